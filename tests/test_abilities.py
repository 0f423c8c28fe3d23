"""Optional detector abilities (the Protocols of ``monitor/contract.py``): the core finds them by
``isinstance``, never by a detector's name, and calls them as the contract says."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from monitor.contract import (
    Batch,
    DataclassStateCodec,
    Detector,
    EvalContext,
    Finding,
    LabelObserver,
    RangeReporter,
    Reference,
    ReferenceObserver,
    SliceReferenceBuilder,
    Status,
    VersionComparator,
    WideColumnNeeds,
)
from monitor.core.checkpoint_references import CheckpointReferences
from monitor.core.registry import discover
from monitor.core.windows import Deltas, WindowAssigner
from monitor.store.keys import WindowKey
from monitor.testing import synthetic_batch
from slices import SliceCatalog, dimensions

SIZE_MS = 300_000


@dataclass(frozen=True)
class SeenState:
    n: int = 0
    reference_ids: tuple[int, ...] = ()  # the reference each observed batch was sketched on
    embedding_width: int = -1


class SketchOnReference(DataclassStateCodec):
    """A toy detector whose state depends on the reference it observed against."""

    name: ClassVar[str] = "sketch"
    version: ClassVar[int] = 1
    state_type: ClassVar[type] = SeenState

    def empty(self) -> SeenState:
        return SeenState()

    def observe(self, state: SeenState, batch: Batch) -> SeenState:
        raise AssertionError("a ReferenceObserver is observed with its reference")

    def observe_with_reference(self, state: SeenState, batch: Batch,
                               reference: Reference | None) -> SeenState:
        ref = -1 if reference is None else reference.reference_id
        return SeenState(state.n + len(batch), (*state.reference_ids, ref),
                         int(batch.embedding.shape[1]))

    def merge(self, a: SeenState, b: SeenState) -> SeenState:
        return SeenState(a.n + b.n, a.reference_ids + b.reference_ids)

    def evaluate(self, state: SeenState, context: EvalContext) -> tuple[Finding, ...]:
        return (Finding(self.name, self.version, Status.OK, n=state.n),)


class NoWideColumns(SketchOnReference):
    name: ClassVar[str] = "narrow"
    wide_columns: ClassVar[frozenset[str]] = frozenset()

    def observe(self, state: SeenState, batch: Batch) -> SeenState:
        return SeenState(state.n + len(batch), (), int(batch.embedding.shape[1]))

    observe_with_reference: Any = None  # a subclass that does not have the ability


def assigner(*detectors: Detector) -> WindowAssigner:
    return WindowAssigner(list(detectors), dimensions(("camera_id",), (), {}), SliceCatalog(10),
                          SIZE_MS)


def observe(a: WindowAssigner, batch: Batch, references: Any) -> Deltas:
    deltas = Deltas()
    a.observe(batch, a.slice_labels(batch), deltas, references)
    return deltas


def test_a_reference_observer_gets_the_checkpoints_cached_reference_of_its_version():
    calls: list[tuple[str, str]] = []

    def lookup(conn: object, model: str, version: str) -> Reference | None:
        calls.append((model, version))
        return Reference(model, version, 7, {}) if version == "1" else None

    refs = CheckpointReferences(lookup, conn=None)
    det = SketchOnReference()
    batch = synthetic_batch(n=300, seed=1, version="1")
    deltas = observe(assigner(det), batch, refs)
    all_key = WindowKey("sketch", "m", "1", "all", int(batch.ts_ms[0]) // SIZE_MS * SIZE_MS)
    assert deltas.states[all_key].reference_ids == (7,)
    assert deltas.states[all_key].n == deltas.counts[all_key] == 300
    per_camera = [s for k, s in deltas.states.items() if k.slice.startswith("camera_id=")]
    assert len(per_camera) == 3 and all(s.reference_ids == (7,) for s in per_camera)
    # The evaluation asks the same object: one lookup per (model, version) per checkpoint.
    assert refs("m", "1").reference_id == 7 and refs("m", "2") is None
    assert calls == [("m", "1"), ("m", "2")]


def test_a_reference_observer_without_a_reference_source_observes_against_none():
    deltas = observe(assigner(SketchOnReference()), synthetic_batch(n=50, seed=2), None)
    assert {s.reference_ids for s in deltas.states.values()} == {(-1,)}


def test_wide_columns_a_detector_does_not_declare_are_dropped_before_it_observes():
    batch = synthetic_batch(n=40, seed=3, dim=16)
    deltas = observe(assigner(SketchOnReference(), NoWideColumns()), batch, None)
    widths = {k.detector: s.embedding_width for k, s in deltas.states.items()}
    assert widths == {"sketch": 16, "narrow": 0}
    assert isinstance(NoWideColumns(), WideColumnNeeds)
    assert not isinstance(NoWideColumns(), ReferenceObserver)


def test_built_in_abilities_are_declared_not_named():
    built_in = {name: cls() for name, (info, cls) in discover().items()
                if info.distribution == "vitmon"}
    label_observers = {n for n, d in built_in.items() if isinstance(d, LabelObserver)}
    assert {"performance", "fairness", "version_health"} <= label_observers
    assert {n for n, d in built_in.items() if isinstance(d, VersionComparator)} == {
        "version_health"}
    assert {n for n, d in built_in.items() if isinstance(d, RangeReporter)} == {"fairness"}
    assert {n for n, d in built_in.items() if isinstance(d, SliceReferenceBuilder)} == {
        "feature_drift"}
    # Sketches on the reference's basis / top classes (docs/drift.md).
    assert {"embedding_drift", "prediction_drift"} <= {
        n for n, d in built_in.items() if isinstance(d, ReferenceObserver)}
    assert all(d.wide_columns <= {"embedding", "probs", "attrs"}
               for d in built_in.values() if isinstance(d, WideColumnNeeds))


def test_checkpoint_references_without_a_lookup_give_none():
    assert CheckpointReferences(None, None)("m", "1") is None
