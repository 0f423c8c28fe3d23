"""The evaluation workers (monitor.core.evaluation_pool): the same findings as in-process
evaluation, from real detectors on real (packed, stored-form) states; a killed worker's chunk
is evaluated in-process; an abandoned wait raises and its late answer is dropped; no process
outlives the pool."""

from __future__ import annotations

import logging
import os
import pickle
import signal
import threading
import time
from dataclasses import dataclass, replace

import numpy as np
import pytest

from detectors.reference import ProfileConfig, build_reference_profile
from monitor.contract import ALL_SLICE, EvalContext, Finding, Reference, ReferenceObserver, StateKey
from monitor.core.evaluation_pool import EvalItem, EvaluationPool
from monitor.core.registry import load_detectors
from monitor.errors import CheckpointAbandoned
from monitor.store.window_states import pack


def _never(step: str) -> None:
    pass


@pytest.fixture(scope="module")
def detectors():
    return {d.name: d for d in load_detectors(None, {})}


def _reference(traffic, seed: int, shift: dict | None = None) -> Reference:
    """Reference 7 of vit 1, from 2,000 events of ``traffic`` (shifted by ``shift``)."""
    config = ProfileConfig(embedding_sample_size=400, pca_fit_size=400, pca_components=8)
    rng = np.random.default_rng(seed)
    return Reference("vit", "1", 7, build_reference_profile(
        [traffic.batch(rng, 1000, shift) for _ in range(2)], config))


@pytest.fixture(scope="module")
def reference(traffic):
    return _reference(traffic, 100)


def _items(detectors, traffic, reference, packed: bool = True) -> list[EvalItem]:
    """Every default detector on windows of a few slices: stationary, drifted, small, empty;
    states observed batch by batch the way the core does, then packed as stored."""
    rng = np.random.default_rng(5)
    windows = [({}, 400), ({"brightness": 0.3}, 400), ({}, 12), ({}, 0),
               ({"prior": 0.5, "embedding": 1.0}, 300)]
    items = []
    for w, (shift, n) in enumerate(windows):
        batches = [traffic.batch(rng, n // 2, shift), traffic.batch(rng, n - n // 2, shift)] \
            if n else []
        for name, det in sorted(detectors.items()):
            state = det.empty()
            for b in batches:
                state = (det.observe_with_reference(state, b, reference)
                         if isinstance(det, ReferenceObserver) else det.observe(state, b))
            key = StateKey("vit", "1", ALL_SLICE if w % 2 == 0 else f"camera_id=c{w}",
                           w * 60_000, (w + 1) * 60_000)
            ctx = EvalContext(key, reference if w != 2 else None, 0.01, 3, 30, w % 2)
            blob = pack(det.dumps(state))
            items.append(EvalItem(name, blob, None, ctx) if packed and w != 4
                         else EvalItem(name, None, det.loads(det.dumps(state)), ctx))
    return items


def _same(a: list[list[Finding]], b: list[list[Finding]]) -> None:
    # repr: exact floats, and a NaN equals a NaN
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert repr(x) == repr(y)


def test_workers_find_exactly_what_in_process_evaluation_finds(detectors, traffic, reference):
    items = _items(detectors, traffic, reference)
    local = EvaluationPool(detectors, 0).evaluate(items, _never)
    assert sum(map(len, local)) > len(items)  # feature_drift and others report sub-findings
    statuses = {f.status for fs in local for f in fs}
    assert len(statuses) >= 3  # ok / drift / insufficient / no_reference: not one path only
    for workers in (1, 2):
        pool = EvaluationPool(detectors, workers)
        try:
            _same(pool.evaluate(items, _never), local)
            _same(pool.evaluate(items[::-1], _never), local[::-1])  # reference cached, same
            assert len(pool.pids()) == workers
        finally:
            pool.close()


def test_a_reference_changed_in_place_is_sent_again(detectors, traffic, reference):
    """A slice warm-up replaces the reference with a new object under the same id: the worker
    must evaluate against the new one, not its cached copy."""
    items = _items(detectors, traffic, reference)
    warmed = _reference(traffic, 101, {"brightness": 0.3})
    changed = [replace(i, ctx=replace(i.ctx, reference=warmed)) if i.ctx.reference else i
               for i in items]
    pool = EvaluationPool(detectors, 1)
    try:
        _same(pool.evaluate(items, _never), EvaluationPool(detectors, 0).evaluate(items, _never))
        assert pool._procs[0].refs == {1}
        after = EvaluationPool(detectors, 0).evaluate(changed, _never)
        assert repr(after) != repr(EvaluationPool(detectors, 0).evaluate(items, _never))
        _same(pool.evaluate(changed, _never), after)
        assert pool._procs[0].refs == {2}  # the old revision dropped in the worker too
    finally:
        pool.close()


def test_a_killed_worker_falls_back_to_in_process(detectors, traffic, reference, caplog):
    items = _items(detectors, traffic, reference)
    local = EvaluationPool(detectors, 0).evaluate(items, _never)
    pool = EvaluationPool(detectors, 1)
    try:
        _same(pool.evaluate(items, _never), local)
        pid = pool.pids()[0]
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        with caplog.at_level(logging.WARNING, logger="monitor.core.evaluation_pool"):
            _same(pool.evaluate(items, _never), local)
        lost = [r for r in caplog.records if "evaluation worker lost" in r.getMessage()]
        assert len(lost) == 1 and "worker=0" in lost[0].getMessage()
        _same(pool.evaluate(items, _never), local)  # a new worker took its place
        assert pool.pids() and pool.pids()[0] != pid
    finally:
        pool.close()


@dataclass
class Slow:
    """A picklable detector whose evaluate takes ``seconds`` (the abandon test)."""

    seconds: float
    name: str = "slow"

    def evaluate(self, state, ctx):
        time.sleep(self.seconds)
        return [state]

    def loads(self, data):
        return pickle.loads(data)


class Unpicklable(Slow):
    def __init__(self) -> None:
        super().__init__(0.0)
        self.lock = threading.Lock()


@pytest.mark.serial  # bounds on wall time: alone on the machine
def test_abandoning_raises_while_waiting_and_the_late_answer_is_dropped():
    pool = EvaluationPool({"slow": Slow(1.0)}, 1)
    try:
        pool.start()
        calls: list[str] = []

        def stopping(step: str) -> None:
            calls.append(step)
            if len(calls) > 2:
                raise CheckpointAbandoned(step)

        t0 = time.monotonic()
        with pytest.raises(CheckpointAbandoned):
            pool.evaluate([EvalItem("slow", None, "first", _ctx())], stopping)
        assert time.monotonic() - t0 < 0.9 and calls[-1] == "evaluate"
        # the next job gets its own answer, not the abandoned one's
        assert pool.evaluate([EvalItem("slow", None, "second", _ctx())], _never) == [["second"]]
    finally:
        pool.close()


@pytest.mark.serial  # bounds on wall time: alone on the machine
def test_no_worker_outlives_close_and_unpicklable_detectors_stay_in_process(caplog):
    pool = EvaluationPool({"slow": Slow(5.0)}, 2)
    pool.start()
    pids = pool.pids()
    assert len(pids) == 2
    pool._send(0, [EvalItem("slow", None, "busy", _ctx())])  # one worker in the middle of a job
    t0 = time.monotonic()
    pool.close()
    assert time.monotonic() - t0 < 4
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with caplog.at_level(logging.WARNING, logger="monitor.core.evaluation_pool"):
        local = EvaluationPool({"slow": Unpicklable()}, 1)
    assert local.workers == 0 and "cannot be pickled" in caplog.text
    assert local.evaluate([EvalItem("slow", None, "x", _ctx())], _never) == [["x"]]
    assert local.pids() == []


def _ctx() -> EvalContext:
    return EvalContext(StateKey("vit", "1", ALL_SLICE, 0, 60_000), None, 0.01, 1, 30, 0)
