"""Step 6 of the checkpoint: evaluate the windows the watermark has closed.

Changed (dirty) windows are evaluated oldest first, one whole window at a time, until the
budget is spent; each state is judged with the family of its detector's slices in the window
(``n_tests``) and its look number (:mod:`monitor.core.label_settle`), the findings are written
through :mod:`monitor.store.findings`, and a slice without a reference of its own may take its
first large window as one (the warm-up, a :class:`~monitor.contract.SliceReferenceBuilder`).
The detectors' ``evaluate`` calls may run in worker processes
(:mod:`monitor.core.evaluation_pool`, ``checkpoint.evaluate_workers``); everything else here
stays in this process. :meth:`WindowEvaluator.evaluate` evaluates and writes windows in one
checkpoint (a window's writes on their own thread while the next window is judged); the
pipelined step 6 (:mod:`monitor.core.evaluation_pipeline`) uses its halves,
:meth:`~WindowEvaluator.prepare` in one checkpoint and :meth:`~WindowEvaluator.write` in a
later one.
Runs inside the checkpoint's transaction; imports the contract, the store and core helpers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection

from monitor.contract import ALL_SLICE, Detector, EvalContext, Finding, SliceReferenceBuilder
from monitor.core.checkpoint_references import CheckpointReferences, ReferenceLookup
from monitor.core.evaluation_pool import EvalItem, EvaluationPool
from monitor.core.label_settle import NOTHING_SETTLED, look_index
from monitor.core.windows import state_key
from monitor.store import references, window_states
from monitor.store.findings import keep_only, labels_settled, upsert_findings
from monitor.store.findings import revisions as finding_revisions
from monitor.store.keys import WindowKey
from slices import OTHER

log = logging.getLogger(__name__)


@dataclass
class WindowEvaluation:
    """One closed window's changed states and the context each is judged in
    (:meth:`WindowEvaluator.prepare`); ``settled``: its labels have settled, ``decided``: keys
    whose decisive look is spent."""

    end: int
    states: list[window_states.StoredState]
    ctxs: list[EvalContext]
    settled: bool
    decided: set[WindowKey] = field(default_factory=set)


class WindowEvaluator:
    """Evaluates closed, changed windows for one checkpointer; ``check(step)`` raises
    :class:`~monitor.errors.CheckpointAbandoned` when the process is stopping."""

    def __init__(self, by_name: Mapping[str, Detector], size_ms: int, lateness_ms: int,
                 alpha: float, min_samples: int, label_decisions: Sequence[str],
                 budget_s: float, warm_up_events: int, references: ReferenceLookup | None,
                 check: Callable[[str], None], pool: EvaluationPool | None = None) -> None:
        self.by_name = by_name
        self.pool = pool  # the detectors' evaluate calls, off this process (None: in-process)
        self.size_ms = size_ms
        self.lateness_ms = lateness_ms
        self.alpha = alpha
        self.min_samples = min_samples
        self.label_decisions = label_decisions
        self.budget_s = budget_s
        self.warm_up_events = warm_up_events
        self.references = references
        self.check = check

    def evaluate(self, conn: Connection, watermark: int, everything: bool,
                 refs: CheckpointReferences, settled: int | None = NOTHING_SETTLED
                 ) -> tuple[list[tuple[WindowKey, Finding]], bool]:
        """Evaluate changed windows whose end + allowed lateness the watermark has passed,
        oldest first, one whole window at a time until ``budget_s`` is spent (at least one
        window; every window with ``everything``). Returns the findings and whether closed
        changed windows are left for a later checkpoint. Windows ending by ``settled`` (every one
        when None) have settled labels (:func:`monitor.core.label_settle.settled_until`)."""
        horizon = None if everything else watermark - self.lateness_ms
        pending = window_states.dirty_windows(conn, horizon)
        out: list[tuple[WindowKey, Finding]] = []
        t0 = time.monotonic()
        done = 0
        # A window's writes (findings, keep_only, mark_evaluated) run on their own thread while
        # this one judges the next window: PostgreSQL spends ~0.9 s a pass over 2,808 keys
        # parsing the findings' details and updating their indexes, for ~0.1 CPU s here
        # (bench/evaluate_step.py), and the statistics are CPU here. The connection is used by
        # one thread at a time: the next window is prepared (and this one's warm-up taken)
        # before the writes start, and the writes are waited for before the next prepare.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="findings-write") as writer:
            writing: Future[list[tuple[WindowKey, Finding]]] | None = None
            work = self.prepare(conn, pending[0], refs, settled is None or pending[0] <= settled,
                                lock=True) if pending else None
            while work is not None:
                findings = list(self._findings(work.states, work.ctxs))
                if writing is not None:
                    out += writing.result()
                if self.warm_up_events > 0:
                    self._warm_up(conn, work.states, refs)
                done += 1
                nxt = None
                if done < len(pending) and (everything or time.monotonic() - t0 < self.budget_s):
                    end = pending[done]
                    nxt = self.prepare(conn, end, refs, settled is None or end <= settled, lock=True)
                writing = writer.submit(self._write, conn, work, findings)
                work = nxt
            if writing is not None:
                out += writing.result()
        return out, done < len(pending)

    def prepare(self, conn: Connection, end: int, refs: CheckpointReferences,
                settled: bool, lock: bool) -> WindowEvaluation:
        """The window ending at ``end``: its changed states (locked with ``lock``) and the
        context each is judged in."""
        size = self.size_ms
        dirty = window_states.load_states(conn, self.by_name, dirty=True, dirty_until=end,
                                          windows=(end - size, end), lock=lock)
        # The family sharing alpha is every slice of the detector in the window, not only the
        # re-evaluated (dirty) ones; ``look`` counts the window's earlier evaluations.
        slices_per = window_states.slices_in_windows(conn, sorted(
            {(s.key.detector, s.key.model, s.key.model_version, s.key.window_start_ms)
             for s in dirty}))
        looks = finding_revisions(conn, [s.key for s in dirty])
        decided = labels_settled(conn, [s.key for s in dirty
                                        if s.key.detector in self.label_decisions])
        ctxs = []
        for s in dirty:
            key = s.key
            n_tests = slices_per.get(
                (key.detector, key.model, key.model_version, key.window_start_ms), 1)
            look = look_index(looks.get(key, 0), key.detector in self.label_decisions, settled,
                              key in decided)
            ctxs.append(EvalContext(state_key(key, size), refs(key.model, key.model_version),
                                    self.alpha, n_tests, self.min_samples, look))
        return WindowEvaluation(end, dirty, ctxs, settled, decided)

    def write(self, conn: Connection, work: WindowEvaluation, findings: Sequence[Sequence[Finding]],
              refs: CheckpointReferences) -> list[tuple[WindowKey, Finding]]:
        """Write each state's ``findings`` (in ``work``'s order), take warm-up references and
        mark exactly these states evaluated."""
        if self.warm_up_events > 0:
            self._warm_up(conn, work.states, refs)
        return self._write(conn, work, findings)

    def _write(self, conn: Connection, work: WindowEvaluation,
               findings: Sequence[Sequence[Finding]]) -> list[tuple[WindowKey, Finding]]:
        """Write each state's ``findings`` and mark exactly these states evaluated."""
        out: list[tuple[WindowKey, Finding]] = []
        for s, found in zip(work.states, findings):
            key = s.key
            for finding in found:
                if key.detector in self.label_decisions:
                    finding = replace(finding, details={
                        **finding.details, "labels_settled": work.settled or key in work.decided})
                out.append((key, finding))
        upsert_findings(conn, [(k, k.window_start_ms + self.size_ms, f) for k, f in out])
        # a label decision's verdict is its latest look's findings: no subject left over from
        # a provisional look (say a group that was the largest before all predictions were in)
        keep_only(conn, [(k, f) for k, f in out if k.detector in self.label_decisions])
        window_states.mark_evaluated(conn, work.end, [s.key for s in work.states],
                                     list(self.by_name), not_before=work.end - self.size_ms)
        return out

    def _findings(self, dirty: Sequence[window_states.StoredState],
                  ctxs: Sequence[EvalContext]) -> Iterator[Sequence[Finding]]:
        """Each state's findings, in order: through the worker processes of ``pool``
        (:mod:`monitor.core.evaluation_pool`), or here, one state at a time."""
        if self.pool is None or self.pool.workers <= 0:
            for s, ctx in zip(dirty, ctxs):
                self.check("evaluate")
                yield list(s.detector.evaluate(s.state, ctx))
            return
        yield from self.pool.evaluate(eval_items(dirty, ctxs), self.check)

    def _warm_up(self, conn: Connection, dirty: Sequence[Any],
                 refs: CheckpointReferences) -> None:
        """Slice reference warm-up (``slices.warm_up_events``, issue 12): a slice of a version
        that has a reference but no sub-profile of its own for a detector that can build one
        (a :class:`~monitor.contract.SliceReferenceBuilder`) takes its first evaluated window
        with at least ``warm_up_events`` events as that sub-profile. That window has just
        reported ``no_reference``; the slice's later windows are compared with it. Never for a
        slice that folds the values outside the admitted top-K (``camera_id=other``): it is not
        one population from window to window. Written into the version's active reference in
        this transaction (in place: same id), so it is kept exactly once with the results."""
        for s in dirty:
            key, det = s.key, s.detector
            if not isinstance(det, SliceReferenceBuilder) or key.slice == ALL_SLICE or \
                    _folds_other(key.slice) or det.state_events(s.state) < self.warm_up_events:
                continue
            ref = refs(key.model, key.model_version)
            if ref is None or ref.model_version != key.model_version:
                continue  # no reference, or the baseline's: never write into another version's
            own = (ref.profile.get("slices") or {}).get(key.slice) or {}
            entry = det.reference_from_state(s.state)
            if set(entry) - {"n_events"} <= set(own):
                continue
            updated = references.add_slice_profile(conn, ref.reference_id, key.slice, entry)
            # changed here, or already by another process: this process's cache is stale
            if self.references is not None:
                self.references.forget(key.model, key.model_version)
            if updated is None:
                continue
            refs.replace(updated)
            log.info("slice reference warmed up model=%s version=%s slice=%s detector=%s n=%d "
                     "window_start_ms=%d", key.model, key.model_version, key.slice,
                     key.detector, det.state_events(s.state), key.window_start_ms)


def eval_items(states: Sequence[window_states.StoredState], ctxs: Sequence[EvalContext]
               ) -> list[EvalItem]:
    """What the evaluation workers are sent: a state still packed is decoded by the worker."""
    return [EvalItem(s.detector.name, None if s.decoded else s.blob,
                     s.state if s.decoded else None, ctx) for s, ctx in zip(states, ctxs)]


def _folds_other(slice_name: str) -> bool:
    """``camera_id=other`` or a cross with an ``other`` part (``region=eu,camera_id=other``)."""
    return any(part.partition("=")[2] == OTHER for part in slice_name.split(","))
