"""Step 6 of the checkpoint, pipelined: closed windows are evaluated in the worker processes
(:mod:`monitor.core.evaluation_pool`) while the next checkpoints ingest.

With ``checkpoint.evaluate_workers`` = 0 every checkpoint evaluates its closed windows itself
(:meth:`WindowEvaluator.evaluate`). With workers, checkpoint N does two things in step 6:

1. FINISH: if the job an earlier checkpoint submitted is done (never waiting), lock its states'
   rows and keep only the results whose row is unchanged since it was loaded (its PostgreSQL
   row version, ``xmin``: a merge, another process's evaluation or a re-insert since makes the
   result stale) and whose reference is still the one the checkpoint uses (a slice warm-up
   replaces it). A stale result is dropped: the row stays dirty and is evaluated again later,
   with its state then. The rest are written as the synchronous path writes them (warm-up,
   findings, ``keep_only``, ``mark_evaluated`` for exactly those keys) and become checkpoint N's
   findings, so its hooks (SLOs, the alert engine) see them.
2. SUBMIT: when nothing is in flight, load the closed changed windows' states (unlocked: the
   transaction commits before the answer is back) and their contexts (``n_tests``, the look
   number from the findings' revisions: one job at a time, so a window is never in flight
   twice and its look number stays right), oldest first, whole windows up to
   :data:`MAX_STATES` states, and send them without waiting. ``evaluate_budget_s`` does not
   apply: it bounds how long evaluation holds a checkpoint's transaction, and a submitted job
   holds none; what a job holds is memory (its states until written), hence the cap.

Crash safety: nothing is marked evaluated but in the transaction that writes its findings, so a
crash, a rollback or an abandoned checkpoint between submit and finish leaves the windows dirty
and they are evaluated after restart (findings are upserts: exactly one row per key and
subject, and a dropped result never counts a look). A checkpoint that rolls back after
submitting keeps its job: rows it had merged get another version when merged again, so their
results are dropped as stale; the others stay valid.

A flush (``evaluate_all``) waits for the job in flight, writes it, then evaluates everything
left synchronously (through the workers). A stopping process waits for the job in flight for
half the time left before the checkpoint would be abandoned, and submits nothing new.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

from sqlalchemy import Connection

from monitor.contract import Finding
from monitor.core.checkpoint_references import CheckpointReferences
from monitor.core.evaluation import WindowEvaluation, WindowEvaluator, eval_items
from monitor.core.evaluation_pool import EvaluationPool, PoolJob
from monitor.store import window_states
from monitor.store.keys import WindowKey

log = logging.getLogger(__name__)

#: states per job at most (at least one whole window): a job holds its states in memory until
#: written; bench/ingest.py's windows have 234 states (26 slices x 9 detectors) of ~2 KB
MAX_STATES = 5_000


@dataclass
class _InFlight:
    job: PoolJob
    windows: list[WindowEvaluation]


class EvaluationPipeline:
    """Step 6 for one checkpointer: synchronous without workers, pipelined with them."""

    def __init__(self, evaluator: WindowEvaluator, pool: EvaluationPool) -> None:
        self.evaluator = evaluator
        self.pool = pool
        self._inflight: _InFlight | None = None

    @property
    def pipelined(self) -> bool:
        return self.pool.workers > 0

    def in_flight(self) -> bool:
        return self._inflight is not None

    def ready(self) -> bool:
        """Nothing in flight, or its answers are in: a checkpoint would write them now."""
        return self._inflight is None or self.pool.ready(self._inflight.job)

    def step(self, conn: Connection, watermark: int, everything: bool,
             refs: CheckpointReferences, settled: int | None,
             stopping_until: float | None = None) -> tuple[list[tuple[WindowKey, Finding]], bool]:
        """Step 6: the findings written in this checkpoint, and whether closed changed windows
        are left (dirty or in flight) for a later one. ``stopping_until``: the process is
        stopping; wait for the job in flight until then (``time.monotonic()``), submit none."""
        out: list[tuple[WindowKey, Finding]] = []
        if self.pipelined:
            while (stopping_until is not None and not self.ready()
                   and time.monotonic() < stopping_until):
                time.sleep(self.pool.poll_s)
            if everything or self.ready():
                out = self._finish(conn, refs)
        # after finishing: a window just written with provisional labels gets its decisive
        # look now if they have settled (an in-flight row is dirty: this would skip it)
        if self.evaluator.label_decisions:
            window_states.mark_labels_settled(conn, self.evaluator.label_decisions, settled)
        if not self.pipelined or everything:
            found, left = self.evaluator.evaluate(conn, watermark, everything, refs, settled)
            return out + found, left
        left = False
        if self._inflight is None and stopping_until is None:
            left = self._submit(conn, watermark, refs, settled)
        return out, left or self._inflight is not None

    def _submit(self, conn: Connection, watermark: int, refs: CheckpointReferences,
                settled: int | None) -> bool:
        """Send the oldest closed changed windows; True if some are left for later."""
        ends = window_states.dirty_windows(conn, watermark - self.evaluator.lateness_ms)
        windows: list[WindowEvaluation] = []
        states = taken = 0
        for end in ends:
            if taken and states >= MAX_STATES:
                break
            self.evaluator.check("evaluate")
            work = self.evaluator.prepare(conn, end, refs, settled is None or end <= settled,
                                          lock=False)
            taken += 1
            if work.states:
                windows.append(work)
                states += len(work.states)
            else:  # only states of disabled detectors: nothing to evaluate, clear them
                self.evaluator.write(conn, work, [], refs)
        if windows:
            job = self.pool.submit(eval_items([s for w in windows for s in w.states],
                                              [c for w in windows for c in w.ctxs]))
            self._inflight = _InFlight(job, windows)
        return taken < len(ends)

    def _finish(self, conn: Connection, refs: CheckpointReferences
                ) -> list[tuple[WindowKey, Finding]]:
        """Write the job in flight (waiting for it if need be): its fresh results only."""
        flight, self._inflight = self._inflight, None  # from now on a failure leaves them dirty
        if flight is None:
            return []
        found = self.pool.collect(flight.job, self.evaluator.check)
        works = flight.windows
        n = sum(len(w.states) for w in works)
        versions = window_states.lock_versions(conn, [s.key for w in works for s in w.states])
        out: list[tuple[WindowKey, Finding]] = []
        at = stale = 0
        for work in works:
            keep = [i for i, (s, ctx) in enumerate(zip(work.states, work.ctxs))
                    if versions.get(s.key) == s.version
                    and ctx.reference is refs(s.key.model, s.key.model_version)]
            stale += len(work.states) - len(keep)
            if keep:
                fresh = replace(work, states=[work.states[i] for i in keep],
                                ctxs=[work.ctxs[i] for i in keep])
                out += self.evaluator.write(conn, fresh, [found[at + i] for i in keep], refs)
            at += len(work.states)
        if stale:
            log.info("evaluation results stale, evaluating again states=%d of=%d", stale, n)
        return out

