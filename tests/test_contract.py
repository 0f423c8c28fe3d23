"""The contract suite, run over every registered detector (built-in or installed), plus the
layering rule: detectors/ and slices/ import no I/O library."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from monitor.contract import Detector, Finding, GroupObserver, Reference, ReferenceObserver, Status
from monitor.core.registry import discover
from monitor.testing import make_context, synthetic_batch

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = discover()
FORBIDDEN = {"kafka", "confluent_kafka", "sqlalchemy", "psycopg", "streamlit",
             "prometheus_client", "requests"}


def _states_equal(det: Detector, a, b) -> bool:
    """Equality through the state's own __eq__ when it defines one, else through its fields."""
    if type(a).__eq__ is not object.__eq__ and not dataclasses.is_dataclass(a):
        return a == b
    try:
        return bool(a == b)
    except ValueError:  # numpy arrays inside a generated __eq__
        return all(np.allclose(getattr(a, f.name), getattr(b, f.name), equal_nan=True)
                   if isinstance(getattr(a, f.name), np.ndarray)
                   else getattr(a, f.name) == getattr(b, f.name)
                   for f in dataclasses.fields(a))


@pytest.fixture(params=sorted(PLUGINS), ids=str)
def detector(request) -> Detector:
    return PLUGINS[request.param][1]()  # constructs from defaults


def test_implements_the_protocol_with_name_and_version(detector):
    assert isinstance(detector, Detector)
    assert isinstance(detector.name, str) and detector.name
    assert isinstance(detector.version, int) and detector.version >= 1


def test_merge_of_observed_halves_equals_observing_the_whole(detector):
    joined = synthetic_batch(n=200, seed=1)
    a, b = joined.take(np.arange(120)), joined.take(np.arange(120, 200))
    e = detector.empty()
    merged = detector.merge(detector.observe(e, a), detector.observe(e, b))
    assert _states_equal(detector, merged, detector.observe(e, joined))
    # Associative and commutative: partitions may merge in any order.
    c = detector.observe(e, synthetic_batch(n=50, seed=3))
    sa, sb = detector.observe(e, a), detector.observe(e, b)
    left = detector.merge(detector.merge(sa, sb), c)
    right = detector.merge(sa, detector.merge(c, sb))
    assert _states_equal(detector, left, right)


# Only the detectors that have the ability (the others are observed once per group): listed,
# not skipped, so the suite reports no skip for a detector that never claimed it.
GROUP_OBSERVERS = sorted(n for n, (_, cls) in PLUGINS.items() if isinstance(cls(), GroupObserver))


@pytest.mark.parametrize("name", GROUP_OBSERVERS)
def test_observing_every_group_at_once_equals_observing_each(name):
    """A GroupObserver's one call per batch returns what one observe per group would."""
    detector = PLUGINS[name][1]()
    from detectors.reference import ProfileConfig, build_reference_profile

    profile = build_reference_profile([synthetic_batch(n=400, seed=11)],
                                      ProfileConfig(embedding_sample_size=300, pca_fit_size=300))
    batch = synthetic_batch(n=300, seed=9, error_rate=0.2)  # error paths too
    cams = batch.attrs["camera_id"]
    groups = [np.arange(300), *(np.flatnonzero(cams == c) for c in ("c1", "c2", "c3")),
              np.flatnonzero(batch.ts_ms % 2 == 0), np.array([7])]
    for ref in (None, Reference("m", "1", 1, profile)):
        def one(state, rows, ref=ref):
            sub = batch.take(rows)
            if isinstance(detector, ReferenceObserver):
                return detector.observe_with_reference(state, sub, ref)
            return detector.observe(state, sub)

        before = one(detector.empty(), np.arange(150, 300))  # a group that has a state already
        states = [detector.empty(), before, *[detector.empty()] * (len(groups) - 2)]
        got = detector.observe_groups(states, batch, groups, ref)
        assert len(got) == len(groups)
        for state, rows, g in zip(states, groups, got, strict=True):
            assert _states_equal(detector, g, one(state, rows))


def test_state_round_trips_through_its_checkpoint_and_continues_identically(detector):
    s = detector.observe(detector.empty(), synthetic_batch(n=100, seed=4))
    restored = detector.loads(detector.dumps(s))
    assert _states_equal(detector, restored, s)
    nxt = synthetic_batch(n=60, seed=5)
    assert _states_equal(detector, detector.observe(restored, nxt), detector.observe(s, nxt))


def test_evaluate_is_deterministic_and_returns_findings(detector):
    s = detector.observe(detector.empty(), synthetic_batch(n=300, seed=6))
    f1 = detector.evaluate(s, make_context())
    f2 = detector.evaluate(detector.loads(detector.dumps(s)), make_context())
    assert f1 and all(isinstance(f, Finding) for f in f1)
    assert [(f.status, f.score, f.p_value, f.subject) for f in f1] == \
           [(f.status, f.score, f.p_value, f.subject) for f in f2]
    assert all(f.detector == detector.name and f.detector_version == detector.version for f in f1)


def test_small_samples_are_insufficient_data_never_healthy(detector):
    s = detector.observe(detector.empty(), synthetic_batch(n=3, seed=7))
    statuses = {f.status for f in detector.evaluate(s, make_context(min_samples=30))}
    assert Status.OK not in statuses and Status.ALERT not in statuses


def test_documents_an_example(detector):
    doc = type(detector).__doc__ or ""
    assert "Example" in doc or ">>>" in doc, f"{detector.name}: class docstring needs an Example"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", ["detectors", "slices"])
def test_pure_packages_import_no_io(package):
    for path in (ROOT / package).rglob("*.py"):
        bad = _imports(path) & FORBIDDEN
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"
        bad_monitor = {m for m in _imports(path) if m == "monitor"}
        if bad_monitor:  # only the contract and the pure test helpers are allowed
            text = path.read_text()
            for line in text.splitlines():
                if line.strip().startswith(("from monitor", "import monitor")):
                    assert ("monitor.contract" in line or "monitor.testing" in line), \
                        f"{path.relative_to(ROOT)}: {line.strip()}"


def test_every_registered_detector_is_documented():
    docs = (ROOT / "README.md").read_text() + "".join(
        p.read_text() for p in (ROOT / "docs").glob("*.md"))
    for name in PLUGINS:
        if PLUGINS[name][0].distribution != "vitmon":
            continue
        assert f"`{name}`" in docs, f"detector {name} has no entry in README.md or docs/"


def test_every_metric_has_help_text():
    from monitor.core.metrics import Metrics

    for metric in Metrics().registry.collect():
        assert metric.documentation.strip(), metric.name
        assert metric.name.startswith("vitmon_")
