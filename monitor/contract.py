"""The detector plugin contract: the one file a detector author needs to read.

A detector is an object with a ``name``, an integer ``version`` and five methods:

``empty() -> State``
    A fresh state for one (model, model_version, slice, window).
``observe(state, batch) -> State``
    Fold a :class:`Batch` of decoded events (already restricted to one state key) into the
    state. Pure and vectorised over the batch; never mutates its inputs.
``merge(a, b) -> State``
    Combine two states of the same key. Must be associative and commutative so partitions can be
    processed by several processes and checkpoints merged in any order:
    ``merge(observe(empty(), a), observe(empty(), b)) == observe(empty(), a + b)``.
``evaluate(state, context) -> tuple[Finding, ...]``
    Turn a state plus the reference into findings. A detector with too little data returns
    ``Status.INSUFFICIENT_DATA``; one that needs a reference and has none returns
    ``Status.NO_REFERENCE`` -- never ``OK``.
``dumps(state) -> bytes`` / ``loads(bytes) -> State``
    Serialise the state for checkpoints. :class:`DataclassStateCodec` implements both for states
    that are frozen dataclasses of numbers, strings, numpy arrays, lists and dicts of those.

Optional abilities: a detector declares one by having its members; each is a
``runtime_checkable`` Protocol below, and the service tests for it with ``isinstance``, never by
the detector's name. Abilities a detector does not declare cost it nothing.

:class:`WideColumnNeeds` (``wide_columns``)
    The wide columns of :data:`WIDE_COLUMNS` (``embedding``, ``probs``, ``attrs`` with
    ``extras``) the detector reads. The core drops the others from the batches it hands this
    detector, so slicing copies less; a detector that does not declare it gets every column.
:class:`LabelObserver` (``observe_labels(state, labelled) -> State``)
    Fold late ground truth into the state of the *prediction's* key (its window and slices).
    Each row carries a ``weight``: +1 adds a (prediction, label) pair, -1 retracts one (a label
    replaced by a later one for the same event: the last label wins), so states must be
    additive (counts), which also keeps ``merge`` associative.
:class:`ReferenceObserver` (``observe_with_reference(state, batch, reference) -> State``)
    For a detector whose per-window state is a sketch on the reference's basis (e.g. embeddings
    projected on the reference's principal axes): the core calls it *instead of* ``observe``,
    with the active reference of the batch's (model, version) -- the same cached lookup the
    evaluation uses -- or None when there is none yet. ``merge`` must still be associative for
    states observed against the same reference.
:class:`GroupObserver` (``observe_groups(states, batch, groups, reference) -> list[State]``)
    Observe every (window, slice) group of one batch in one call: ``groups[i]`` (ascending
    int64 row indices into ``batch``, never empty) folds into ``states[i]``; it returns the new
    states in order. A call's groups are of one (model, version), ``reference`` its active one
    (or None); ``batch`` may hold other versions' rows too. Called *instead of* the per-group
    ``observe`` / ``observe_with_reference``, so per-batch work (projecting every embedding,
    hashing ids) is done once and groups fold by vectorised reductions (``np.add.reduceat``);
    it must return exactly what the per-group calls on ``batch.take(groups[i])`` return (the
    contract suite checks it).
:class:`Precomputable` (``precompute(reference) -> fn | None``)
    Per-row observe work depending only on the row and the reference (embedding projections):
    a picklable ``fn(batch) -> array | None`` (a row per event) with a ``key`` naming it. The
    core may run it ahead (decode worker); ``observe`` finds the rows with :func:`precomputed`
    and must give the same state with them or without.
:class:`VersionComparator` (``compare_versions(candidate, baseline, baseline_version, context)``)
    Compare a candidate (canary) version's state with the baseline version's state of the same
    slice and window; a comparison spans two keys, so it is not ``evaluate``. Whenever a window
    of the detector is (re-)evaluated, the alerting layer reads both states and stores the
    returned finding under the candidate's key (subject ``vs <baseline>``); ``context.key`` is
    the candidate's, ``context.n_tests`` the number of slices compared in that window.
:class:`RangeReporter` (``report_formats``, ``render_report(state, scope, fmt) -> str``)
    Render the state merged over a range of windows (:class:`ReportScope`) as a self-contained
    document, e.g. the fairness audit as HTML or CSV. The detector renders itself; the reports
    layer only loads and merges the window states. A parameter that makes the report impossible
    is a :class:`ConfigError` naming the setting.

Detectors are registered under the entry-point group ``vitmon.detectors`` (built-ins too) and
constructed with keyword parameters from config, each with a default. ``detectors/`` and
``slices/`` import nothing of ``monitor`` but this module, and never Kafka, SQLAlchemy,
Streamlit or prometheus_client; ``tests/test_contract.py`` and the import-linter contracts in
``pyproject.toml`` enforce it, and the contract suite runs over every registered detector.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from monitor.codec import DataclassStateCodec, decode_value, encode_value
from monitor.errors import ConfigError

ENTRY_POINT_GROUP = "vitmon.detectors"
ALL_SLICE = "all"
#: Columns of a :class:`Batch` that are wide (per-event vectors or mappings): see
#: :class:`WideColumnNeeds`. ``attrs`` stands for ``extras`` too.
WIDE_COLUMNS = frozenset({"embedding", "probs", "attrs"})

__all__ = ["ALL_SLICE", "ENTRY_POINT_GROUP", "PRECOMPUTED", "WIDE_COLUMNS", "Batch",
           "ConfigError", "DataclassStateCodec", "Detector", "EvalContext", "Finding",
           "GroupObserver", "LabelObserver", "LabelledBatch", "Precomputable", "RangeReporter",
           "Reference", "ReferenceObserver", "ReportScope", "Severity", "StateKey", "Status",
           "VersionComparator", "WideColumnNeeds", "decode_value", "encode_value",
           "finite_or_none", "group_offsets", "precomputed"]


class Status(str, enum.Enum):
    OK = "ok"
    WARN = "warn"
    ALERT = "alert"
    INSUFFICIENT_DATA = "insufficient_data"
    NO_REFERENCE = "no_reference"


class Severity(str, enum.Enum):
    NONE = "none"
    TICKET = "ticket"
    PAGE = "page"


@dataclass(frozen=True, slots=True)
class Batch:
    """Columnar view of N decoded prediction events (one row per accepted, deduplicated event).

    Missing optional numbers are NaN, missing predictions are -1, missing strings are None.
    ``embedding`` is float32 [N, D] (D fixed per model), or float16 when every event of the batch
    sent its embedding as base64 f16 (kept as sent: no conversion, half the memory; read it with
    ``np.asarray(x, wanted_dtype)``), with ``has_embedding`` marking real rows;
    ``probs`` is float32 [N, C] with ``has_probs`` likewise. ``image`` and ``attrs`` map a field name
    to a length-N array (float64 for ``image``, object for ``attrs``)."""

    event_id: np.ndarray  # object[str]
    ts_ms: np.ndarray  # int64, event time in epoch milliseconds
    model: np.ndarray  # object[str]
    model_version: np.ndarray  # object[str]
    latency_ms: np.ndarray  # float64
    is_error: np.ndarray  # bool
    pred: np.ndarray  # int32, -1 where absent (error events)
    confidence: np.ndarray  # float32, NaN where absent
    probs: np.ndarray  # float32 [N, C]; C == 0 when no event carries probs
    has_probs: np.ndarray  # bool
    embedding: np.ndarray  # float32 or float16 [N, D]; D == 0 when no event carries one
    has_embedding: np.ndarray  # bool
    image: Mapping[str, np.ndarray] = field(default_factory=dict)
    attrs: Mapping[str, np.ndarray] = field(default_factory=dict)
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)  # batch_size, cold_start, ...

    def __len__(self) -> int:
        return int(self.ts_ms.shape[0])

    def take(self, index: np.ndarray) -> Batch:
        """Rows selected by an integer or boolean index, as a new Batch."""
        arrays = {name: getattr(self, name)[index] for name in _BATCH_ARRAYS}
        maps = {name: {k: v[index] for k, v in getattr(self, name).items()}
                for name in _BATCH_MAPS}
        return Batch(**arrays, **maps)


_BATCH_MAPS = ("image", "attrs", "extras")
_BATCH_ARRAYS = tuple(f.name for f in dataclasses.fields(Batch) if f.name not in _BATCH_MAPS)


@dataclass(frozen=True, slots=True)
class LabelledBatch:
    """Predictions joined with their ground truth (one model, version, window and slice)."""

    event_id: np.ndarray  # object[str]
    ts_ms: np.ndarray  # int64, the prediction's event time
    pred: np.ndarray  # int32, -1 for error events
    label: np.ndarray  # int64
    weight: np.ndarray  # int64: +1 add, -1 retract (a replaced label)
    confidence: np.ndarray  # float32, NaN where absent
    is_error: np.ndarray  # bool
    attrs: Mapping[str, np.ndarray] = field(default_factory=dict)  # object[str | None]

    def __len__(self) -> int:
        return int(self.ts_ms.shape[0])

    def take(self, index: np.ndarray) -> LabelledBatch:
        return LabelledBatch(self.event_id[index], self.ts_ms[index], self.pred[index],
                             self.label[index], self.weight[index], self.confidence[index],
                             self.is_error[index], {k: v[index] for k, v in self.attrs.items()})


@dataclass(frozen=True, slots=True)
class Reference:
    """A reference profile for one (model, model_version). Detectors read what they need:
    ``profile`` holds named numpy arrays and scalars (bin edges, class frequencies, an embedding
    sample, ...); its keys are documented by the detectors that read them."""

    model: str
    model_version: str
    reference_id: int
    profile: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class StateKey:
    model: str
    model_version: str
    slice: str
    window_start_ms: int
    window_end_ms: int


@dataclass(frozen=True, slots=True)
class EvalContext:
    """What ``evaluate`` gets besides the state.

    ``key``
        The (model, version, slice, window) evaluated.
    ``reference``
        The active reference profile of the model version (or of the model's baseline version),
        None when there is none: a detector that needs one reports ``no_reference``.
    ``alpha``
        The family-wise significance level configured for this detector (``detectors.alpha``).
    ``n_tests``
        The number of slices configured for this detector in this (model, version) window: they
        share ``alpha`` (e.g. Bonferroni: each slice tests at ``alpha / n_tests``).
    ``min_samples``
        Below this many events (or labels) a detector reports ``insufficient_data``.
    ``look``
        How many earlier evaluations of this same (detector, model, version, slice, window) there
        were: 0 the first time, then one more for each re-evaluation after late events or labels.
        A detector whose decision must keep its false-alarm guarantee over all looks (alpha
        spending, a sequential test) uses it; a one-look test ignores it. For a
        :class:`LabelDecision` detector, 0 is the first look after the window's labels settled
        and every other look counts 1 + its earlier evaluations (each index is used once).
    """

    key: StateKey
    reference: Reference | None
    alpha: float
    n_tests: int = 1
    min_samples: int = 30
    look: int = 0


@dataclass(frozen=True, slots=True)
class Finding:
    """One result of a detector for one state key. ``subject`` names a sub-result (a feature, an
    SLO, a group); the main finding has subject ``""``. ``details`` must be JSON-serialisable."""

    detector: str
    detector_version: int
    status: Status
    score: float | None = None
    threshold: float | None = None
    p_value: float | None = None
    severity: Severity = Severity.NONE
    n: int = 0
    subject: str = ""
    test: str = ""  # e.g. "ks", "chi2", "hotelling-t2-f", "summary"
    details: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def insufficient(cls, det: Detector, n: int, need: int, subject: str = "") -> Finding:
        return cls(det.name, det.version, Status.INSUFFICIENT_DATA, n=n, subject=subject,
                   details={"reason": f"{n} events, need {need}"})

    @classmethod
    def no_reference(cls, det: Detector, n: int, subject: str = "") -> Finding:
        return cls(det.name, det.version, Status.NO_REFERENCE, n=n, subject=subject,
                   details={"reason": "no active reference for this model version"})


@runtime_checkable
class Detector(Protocol):
    name: ClassVar[str]
    version: ClassVar[int]

    def empty(self) -> Any: ...
    def observe(self, state: Any, batch: Batch) -> Any: ...
    def merge(self, a: Any, b: Any) -> Any: ...
    def evaluate(self, state: Any, context: EvalContext) -> tuple[Finding, ...]: ...
    def dumps(self, state: Any) -> bytes: ...
    def loads(self, data: bytes) -> Any: ...


class AdmittedGroups(Protocol):
    """Which values of a capped slice attribute keep their own slice (the others: ``other``)
    per event-time window: ``slices.SliceCatalog``, or the service's top-K by volume."""

    def cap(self, attribute: str, values: np.ndarray, window_start_ms: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class WideColumnNeeds(Protocol):
    """Declares the wide columns (a subset of :data:`WIDE_COLUMNS`) the detector reads."""

    wide_columns: ClassVar[frozenset[str]]


@runtime_checkable
class LabelObserver(Protocol):
    """Folds late ground truth (signed weights: +1 add, -1 retract) into a state."""

    def observe_labels(self, state: Any, labelled: LabelledBatch) -> Any: ...


@runtime_checkable
class LabelDecision(Protocol):
    """A :class:`LabelObserver` whose decision rests on the window's labels (fairness), so its
    decisive look (``look`` 0, most of ``alpha``) is the first evaluation after the labels
    settled -- the labels' event time (every labels partition) past the window's end +
    ``windows.label_settle_s``, or everything read (``--exit-when-idle``); every other
    evaluation is a provisional look ``k >= 1`` (1 + the earlier ones). Its findings carry
    ``details.labels_settled``. Otherwise look 0 would come at window close with a fraction of
    the labels, and the verdict would depend on how often the reading speed let it look."""

    label_decision: ClassVar[bool]


@runtime_checkable
class ReferenceObserver(Protocol):
    """Observes a batch against the active reference (called instead of ``observe``)."""

    def observe_with_reference(self, state: Any, batch: Batch, reference: Reference | None) -> Any: ...


@runtime_checkable
class GroupObserver(Protocol):
    """Observes all (window, slice) groups of a batch in one call (instead of per group)."""

    def observe_groups(self, states: Sequence[Any], batch: Batch, groups: Sequence[np.ndarray],
                       reference: Reference | None) -> list[Any]: ...


@runtime_checkable
class Precomputable(Protocol):
    """Has per-row observe work the core may run ahead (see the module docstring)."""
    def precompute(self, reference: Reference) -> Any: ...


PRECOMPUTED = "_precomputed:{}:{}"  # Batch.extras name: PRECOMPUTED.format(detector, key)


def precomputed(batch: Batch, detector: str, key: str) -> np.ndarray | None:
    """The rows ``detector``'s precompute ``key`` gave for ``batch``, if the core ran it."""
    return batch.extras.get(PRECOMPUTED.format(detector, key))


def group_offsets(groups: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, starts)`` for folding many groups at once: ``rows`` is the groups' row indices
    concatenated, ``starts`` where each group begins in it, so ``np.add.reduceat(x[rows],
    starts)`` sums a per-row array ``x`` over every group in one call.

    >>> rows, starts = group_offsets([np.array([0, 2]), np.array([1])])
    >>> np.add.reduceat(np.array([10, 20, 30])[rows], starts).tolist()
    [40, 20]
    """
    sizes = np.fromiter((len(g) for g in groups), np.int64, len(groups))
    starts = np.zeros(len(groups), np.int64)
    np.cumsum(sizes[:-1], out=starts[1:])
    rows = np.concatenate(groups) if groups else np.zeros(0, np.int64)
    return rows.astype(np.int64, copy=False), starts


@runtime_checkable
class VersionComparator(Protocol):
    """Compares a candidate version's state with the baseline version's (same slice, window)."""

    def compare_versions(self, candidate: Any, baseline: Any, baseline_version: str,
                         context: EvalContext) -> Finding: ...


@runtime_checkable
class SliceReferenceBuilder(Protocol):
    """Builds a slice's own reference sub-profile from one window's state: the slice warm-up
    (``slices.warm_up_events``) takes a slice's first evaluated window with at least that many
    events (``state_events``) as the slice's reference when the captured one had none."""

    def reference_from_state(self, state: Any) -> Mapping[str, Any]: ...
    def state_events(self, state: Any) -> int: ...


@dataclass(frozen=True, slots=True)
class ReportScope:
    """What a range report covers: one model version and slice over ``[from_ms, to_ms)`` of event
    time, merged from ``windows`` window states, judged at family-wise level ``alpha``."""

    model: str
    model_version: str
    slice: str
    from_ms: int
    to_ms: int
    windows: int
    alpha: float


@runtime_checkable
class RangeReporter(Protocol):
    """Renders its state merged over a range of windows as a self-contained document."""

    report_formats: ClassVar[tuple[str, ...]]  # e.g. ("html", "csv")

    def render_report(self, state: Any, scope: ReportScope, fmt: str) -> str: ...


def finite_or_none(x: float | None) -> float | None:
    """Scores go to JSON and PostgreSQL: NaN/Inf become None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None
