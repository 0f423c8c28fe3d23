"""Event-time tumbling windows and slices -> per-key detector deltas. Pure: no I/O, no clock.

A checkpoint's accepted events are grouped by (model, model_version, window, slice); every
detector observes each group into a fresh state -- the *delta* -- which storage then merges into
the stored state of that key. Because ``merge`` is associative, the stored state is the same
whatever the checkpoint boundaries, restarts, or how partitions are spread over processes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from monitor.contract import (
    PRECOMPUTED,
    AdmittedGroups,
    Batch,
    Detector,
    GroupObserver,
    Reference,
    ReferenceObserver,
    StateKey,
    WideColumnNeeds,
)
from monitor.core.stages import Clock, StageClock
from monitor.store.keys import WindowKey
from slices import ALL, Dimension
from slices.assign import dimension_codes, factorize

SLICE_SEPARATOR = "\x1f"  # joins an event's slice names (reports)
#: (model, version) -> the active reference, for :class:`~monitor.contract.ReferenceObserver`s.
ReferenceSource = Callable[[str, str], "Reference | None"]


@dataclass
class Deltas:
    """What one checkpoint adds: detector state deltas and event counts per key."""

    states: dict[WindowKey, Any] = field(default_factory=dict)
    counts: dict[WindowKey, int] = field(default_factory=dict)


def window_start(ts_ms: np.ndarray, size_ms: int) -> np.ndarray:
    """Start of the tumbling window holding each event time.

    >>> window_start(np.array([0, 299_999, 300_000, -1]), 300_000).tolist()
    [0, 0, 300000, -300000]
    """
    return (ts_ms // size_ms) * size_ms


def window_codes(ts_ms: np.ndarray, size_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(window_start(ts_ms, size_ms), return_inverse=True)`` (int64 codes) in one
    ``bincount`` over the window numbers instead of a sort of every row.

    >>> [a.tolist() for a in window_codes(np.array([900_000, 0, 299_999, 650_000]), 300_000)]
    [[0, 600000, 900000], [2, 0, 0, 1]]
    """
    number = np.asarray(ts_ms, np.int64) // size_ms
    if number.size == 0 or int(number.max()) - int(number.min()) >= 1 << 20:
        starts, code = np.unique(number * size_ms, return_inverse=True)
        return starts, code.ravel().astype(np.int64)
    rel = number - number.min()
    present = np.flatnonzero(np.bincount(rel))
    dense = np.zeros(int(present[-1]) + 1, np.int64)
    dense[present] = np.arange(present.size)
    return (present + number.min()) * size_ms, dense[rel]


def _stable_order(key: np.ndarray, bound: int) -> np.ndarray:
    """``np.argsort(key, kind="stable")`` of keys in ``[0, bound)``: as uint16 when they fit,
    where numpy sorts by radix (50x faster on 20,000 rows; the same order)."""
    return np.argsort(key.astype(np.uint16) if bound <= 1 << 16 else key, kind="stable")


def state_key(key: WindowKey, size_ms: int) -> StateKey:
    return StateKey(key.model, key.model_version, key.slice, key.window_start_ms,
                    key.window_start_ms + size_ms)


def _numeric_columns(batch: Batch) -> dict[str, np.ndarray]:
    cols = {f"image.{k}": v for k, v in batch.image.items()}
    cols["latency_ms"] = batch.latency_ms
    cols["confidence"] = batch.confidence.astype(np.float64)
    return cols


def _thin(batch: Batch, det: Detector) -> Batch:
    """Drop the wide columns a detector does not read (:class:`WideColumnNeeds`), so slicing
    copies less."""
    if not isinstance(det, WideColumnNeeds):
        return batch
    n = len(batch)
    changes: dict[str, Any] = {}
    if "embedding" not in det.wide_columns:
        changes["embedding"] = np.zeros((n, 0), dtype=np.float32)
    if "probs" not in det.wide_columns:
        changes["probs"] = np.zeros((n, 0), dtype=np.float32)
    if "attrs" not in det.wide_columns:
        changes["attrs"] = {}
        mine = PRECOMPUTED.format(det.name, "")  # its precomputed rows stay (Precomputable)
        changes["extras"] = {k: v for k, v in batch.extras.items() if k.startswith(mine)}
    return replace(batch, **changes) if changes else batch


class WindowAssigner:
    """Assigns events to windows and slices and observes them into per-key deltas.

    ``detector_dims`` optionally restricts a detector to slice ``all`` plus the named
    dimensions (an embedding detector on every slice of 20 attributes would copy each
    embedding 21 times).
    """

    def __init__(self, detectors: Iterable[Detector], dims: tuple[Dimension, ...],
                 catalog: AdmittedGroups, window_size_ms: int,
                 detector_dims: Mapping[str, tuple[str, ...]] | None = None) -> None:
        self.detectors = list(detectors)
        self.dims = dims
        self.catalog = catalog
        self.size_ms = window_size_ms
        self.detector_dims = dict(detector_dims or {})
        self._blas: ThreadpoolController | None = None  # found at the first observe
        # (labels, names, codes) of the latest slice_labels calls' dimensions, so groups()
        # need not factorise labels again (a checkpoint observes a batch right after labelling
        # it; a few batches' worth in case labelling runs ahead).
        self._coded: deque[tuple[np.ndarray, np.ndarray, np.ndarray]] = deque(
            maxlen=4 * max(len(dims), 1))

    def slice_labels(self, batch: Batch) -> list[tuple[Dimension, np.ndarray]]:
        numeric = _numeric_columns(batch)
        windows = window_codes(batch.ts_ms, self.size_ms)
        starts = windows[0][windows[1]]
        out = []
        for d in self.dims:
            names, codes = dimension_codes(d, len(batch), batch.attrs, numeric, self.catalog,
                                           starts, windows)
            out.append((d, names[codes]))
            self._coded.append((out[-1][1], names, codes))
        return out

    def _factorized(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``factorize(labels)``; for labels this assigner made (the same array object), from
        the codes it made them with: a sort of the few names, not a pass over the rows."""
        for made, names, codes in tuple(self._coded):  # a snapshot: another thread may append
            if made is labels:
                sorted_names, rank = factorize(names)
                return sorted_names, rank[codes]
        return factorize(labels)

    @staticmethod
    def joined(labels: list[tuple[Dimension, np.ndarray]], n: int) -> np.ndarray:
        """Each event's slice names joined by SLICE_SEPARATOR."""
        joined = np.full(n, ALL, dtype=object)
        for _, lab in labels:
            joined = joined + SLICE_SEPARATOR + lab
        return joined

    def groups(self, batch: Batch, labels: list[tuple[Dimension, np.ndarray]]) -> list[Group]:
        """Every non-empty (version, window, slice) group of ``batch``'s rows, found once per
        batch (one ``argsort`` per dimension) and reused by every detector. Rows keep their
        batch order inside a group."""
        n = len(batch)
        versions, v_code = factorize(batch.model_version)
        windows, w_code = window_codes(batch.ts_ms, self.size_ms)
        vw = v_code * len(windows) + w_code
        columns = [(None, np.array([ALL], dtype=object), np.zeros(n, dtype=np.int64))]
        for dim, lab in labels:
            columns.append((dim.name, *self._factorized(lab)))
        out = []
        for dim_name, names, code in columns:
            key = vw * len(names) + code
            order = _stable_order(key, len(versions) * len(windows) * len(names))
            ordered = key[order]
            bounds = np.flatnonzero(np.diff(ordered)) + 1
            for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, n]):
                g, j = divmod(int(ordered[lo]), len(names))
                out.append(Group(str(versions[g // len(windows)]), int(windows[g % len(windows)]),
                                 str(names[j]), dim_name, order[lo:hi]))
        return out

    def observe(self, batch: Batch, labels: list[tuple[Dimension, np.ndarray]],
                deltas: Deltas, references: ReferenceSource | None = None,
                clock: Clock | None = None) -> None:
        """Fold ``batch`` (one model; ``labels`` from :meth:`slice_labels`) into ``deltas``.

        A :class:`~monitor.contract.GroupObserver` gets every group of a version in one call;
        the others are called per group. A :class:`~monitor.contract.ReferenceObserver`
        observes against ``references(model, version)`` (None without a source). ``clock``
        times slicing and each detector's observe."""
        if len(batch) == 0:
            return
        clock = clock or StageClock()
        # One BLAS thread: observe's products are narrow (768 x 16 projections, 18 x 18 Gram
        # matrices), where a second OpenBLAS thread mostly spins -- on the core the consumer's
        # poll/decode thread and PostgreSQL need (bench/observe.py with 2 threads: ~6x the CPU).
        self._blas = self._blas or ThreadpoolController()
        with self._blas.limit(limits=1, user_api="blas"):
            self._observe(batch, labels, deltas, references, clock)

    def _observe(self, batch: Batch, labels: list[tuple[Dimension, np.ndarray]],
                 deltas: Deltas, references: ReferenceSource | None, clock: Clock) -> None:
        model = str(batch.model[0])
        with clock("slicing"):
            groups = self.groups(batch, labels)
            by_version: dict[str, list[Group]] = {}
            for g in groups:
                by_version.setdefault(g.version, []).append(g)
        for det in self.detectors:
            allowed = self.detector_dims.get(det.name)
            stage = f"observe:{det.name}"
            kind = _ability(det)
            with clock(stage):
                thin = _thin(batch, det)
            for version, vgroups in by_version.items():
                mine = [g for g in vgroups
                        if allowed is None or g.dim is None or g.dim in allowed]
                if not mine:
                    continue
                ref = None
                if kind != _PLAIN and references is not None:
                    ref = references(model, version)
                keys = [WindowKey(det.name, model, version, g.slice, g.start) for g in mine]
                if kind == _GROUPS:
                    with clock(stage):  # a stopping checkpoint gives up between detectors
                        # One empty state for every key new to this checkpoint (observe never
                        # mutates its inputs), not an empty() per group: 9 detectors x ~300
                        # groups a batch.
                        blank = det.empty()
                        prev = [deltas.states.get(k, blank) for k in keys]
                        new = det.observe_groups(prev, thin, [g.rows for g in mine], ref)
                        deltas.states.update(zip(keys, new, strict=True))
                else:
                    self._observe_each(det, kind, keys, mine, batch, thin, ref, deltas, clock,
                                       stage)
                for key, g in zip(keys, mine, strict=True):
                    deltas.counts[key] = deltas.counts.get(key, 0) + len(g.rows)

    @staticmethod
    def _observe_each(det: Detector, kind: int, keys: list[WindowKey], groups: list[Group],
                      batch: Batch, thin: Batch, ref: Reference | None, deltas: Deltas,
                      clock: Clock, stage: str) -> None:
        """A detector without :class:`~monitor.contract.GroupObserver`: one call per group."""
        for key, g in zip(keys, groups, strict=True):
            with clock(stage):  # per group: a stopping checkpoint gives up between groups
                sub = thin if len(g.rows) == len(batch) else thin.take(g.rows)
                prev = deltas.states.get(key)
                prev = det.empty() if prev is None else prev
                if kind == _REFERENCE:
                    deltas.states[key] = det.observe_with_reference(prev, sub, ref)
                else:
                    deltas.states[key] = det.observe(prev, sub)


_PLAIN, _REFERENCE, _GROUPS = 0, 1, 2


def _ability(det: Detector) -> int:
    """How the core observes ``det`` (a runtime Protocol check is slow: done once per batch)."""
    if isinstance(det, GroupObserver):
        return _GROUPS
    return _REFERENCE if isinstance(det, ReferenceObserver) else _PLAIN


@dataclass(frozen=True, slots=True)
class Group:
    """The rows of one (version, window, slice) of a batch; ``dim`` None for slice ``all``."""

    version: str
    start: int
    slice: str
    dim: str | None
    rows: np.ndarray
