"""Top-K slice values by volume, shared by every process through PostgreSQL.

:class:`TopKAdmission` is the service's :class:`~monitor.contract.AdmittedGroups`: for each
capped attribute and event-time window it holds the set of values that keep their own slice
(the rest fold into ``other``). The set of window *w* is decided once, by the first checkpoint
(of any process) holding an event of *w*, from the heavy-hitters sketch of the latest earlier
window (:mod:`slices.sketch`: top ``max_values`` of at least ``min_volume`` events, or the
attribute's allow-list), and stored in ``slice_admissions``; every later checkpoint, replay and
process reads that row. So a set changes only at window boundaries, all processes slice a window
alike, and a burst of junk values ages out with the window it came in. The attribute's very
first window has no earlier sketch: it is decided from its own volume in that first checkpoint
(the one decision that depends on where a checkpoint ends).

Each checkpoint folds its events' value counts into the sketches (``slice_sketches``; locked
at its end, in key order, so concurrent processes merge rather than overwrite). Within one
checkpoint, windows are decided in time order from the sketches *including* this checkpoint's
counts, so a backlog read in one checkpoint is sliced as it would be live.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from sqlalchemy import Connection

from monitor.contract import Batch
from monitor.store import slice_admissions as store
from slices import OTHER
from slices.sketch import add, admit, value_counts

Key = tuple[str, int]  # (attribute, window_start_ms)
#: Sketch counters per admitted value: Misra-Gries with 4K counters undercounts by at most
#: N/(4K+1), so a value holding more than a 1/(K+1) share of a window is never missed.
SKETCH_PER_VALUE = 4
#: Windows of decided sets kept in memory (late events of older windows reload theirs).
KEEP_WINDOWS = 16
#: Sketches older than this many windows before the newest decided one are deleted.
SKETCH_RETENTION_WINDOWS = 48


class TopKAdmission:
    def __init__(self, attributes: Iterable[str], max_values: int, min_volume: int,
                 window_ms: int, allow: Mapping[str, Sequence[str]] | None = None) -> None:
        self.attributes = tuple(dict.fromkeys(attributes))
        self.k, self.min_volume, self.window_ms = max_values, min_volume, window_ms
        self.capacity = SKETCH_PER_VALUE * max_values
        self.allow = {a: tuple(v) for a, v in (allow or {}).items()}
        self._sets: dict[Key, frozenset[str]] = {}  # committed decisions
        self._attempt: dict[Key, frozenset[str]] = {}  # loaded or decided in this attempt
        self._counts: dict[Key, dict[str, int]] = {}  # this attempt's volume

    # -- AdmittedGroups ----------------------------------------------------------------------
    def cap(self, attribute: str, values: np.ndarray, window_start_ms: np.ndarray) -> np.ndarray:
        """``values`` with those not admitted in their row's window replaced by ``other``."""
        values = np.asarray(values, dtype=object)
        out = values.copy()
        windows = np.asarray(window_start_ms)
        for w in np.unique(windows):
            rows = np.flatnonzero(windows == w)
            admitted = self._set((attribute, int(w)))
            keep = np.fromiter((v in admitted for v in values[rows]), bool, len(rows))
            out[rows[~keep]] = OTHER
        return out

    def _set(self, key: Key) -> frozenset[str]:
        found = self._attempt.get(key)
        if found is None:
            found = self._sets.get(key)
        if found is None:  # begin() prepares every window of the checkpoint's batches
            raise KeyError(f"slice admission of {key} not prepared for this checkpoint")
        return found

    # -- the checkpoint ----------------------------------------------------------------------
    def begin(self, conn: Connection, batches: Sequence[Batch]) -> None:
        """Start of a checkpoint attempt: count the batches' values and load or decide the
        admitted set of every (attribute, window) they touch."""
        self._attempt, self._counts = {}, {}
        if not self.attributes:
            return
        for batch in batches:
            starts = (batch.ts_ms // self.window_ms) * self.window_ms
            windows = np.unique(starts)
            for w in windows:
                rows = None if len(windows) == 1 else starts == w
                for attr in self.attributes:
                    prev = self._counts.setdefault((attr, int(w)), {})
                    for v, n in value_counts(batch.attrs.get(attr), rows, len(batch)).items():
                        prev[v] = prev.get(v, 0) + n
        missing = sorted(k for k in self._counts if k not in self._sets)
        stored = store.load(conn, missing)
        undecided = [k for k in missing if k not in stored]
        if undecided:  # a handful of statements for all of them, not four per window
            stored |= self._decide(conn, undecided)
        self._attempt = {k: frozenset(stored[k]) for k in missing}

    def _decide(self, conn: Connection, keys: list[Key]) -> dict[Key, list[str]]:
        previous = store.previous_sketches(conn, keys)  # sketches change only in finish()
        decisions = []
        for key in keys:
            attr, w = key
            earlier = [k for k in self._counts if k[0] == attr and k[1] < w]
            prev = previous.get(key)
            source = max([k[1] for k in earlier] + ([prev[0]] if prev else []), default=None)
            sketch: dict[str, int] = {}
            if prev is not None and prev[0] == source:
                sketch = prev[1]
            if source is None:  # the attribute's first window: its first checkpoint's volume
                source = w
            if (attr, source) in self._counts:
                sketch = add(sketch, self._counts[(attr, source)], self.capacity)
            decisions.append((key, admit(sketch, self.k, self.min_volume,
                                         self.allow.get(attr, ())), source))
        store.prune(conn, max(s for _, _, s in decisions) -
                    SKETCH_RETENTION_WINDOWS * self.window_ms)
        return store.decide_many(conn, decisions)

    def finish(self, conn: Connection) -> None:
        """Near the end of the checkpoint: merge this attempt's counts into the sketches."""
        if not self._counts:
            return
        locked = store.lock_sketches(conn, self._counts)
        store.save_sketches(conn, {k: add(locked.get(k, {}), c, self.capacity)
                                   for k, c in self._counts.items()})

    def committed(self) -> None:
        self._sets.update(self._attempt)
        self._attempt, self._counts = {}, {}
        if len(self._sets) > KEEP_WINDOWS * max(len(self.attributes), 1):
            newest = max(w for _, w in self._sets)
            horizon = newest - KEEP_WINDOWS * self.window_ms
            self._sets = {k: v for k, v in self._sets.items() if k[1] > horizon}
