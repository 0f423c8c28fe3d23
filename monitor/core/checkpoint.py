"""The checkpoint: one numbered procedure in ONE PostgreSQL transaction.

1. Read this consumer's offset rows; refuse (:class:`~monitor.errors.Fenced`) if another
   process claimed a partition since this one did (its epoch moved on), and refuse if a stored
   offset differs from where this checkpoint's records started (offsets would go back). Step 7
   checks again under a row lock: the lock is held only at the end of the transaction, so a
   process paused mid-checkpoint ("zombie") never blocks another's claim of its partitions.
   Then the intake (:mod:`monitor.core.ingest.intake`): caps on models and versions, the
   embedding dimension of the parked events' versions (settling or keeping them parked), and
   the slice values admitted in the batches' windows.
2. Store rejected events (original bytes + reason); a replay after a crash inserts nothing twice.
3. Insert the accepted predictions; the primary key on ``event_id`` drops duplicates, and only
   the rows actually inserted go on (a duplicate ``event_id`` is counted once, across restarts).
   The insert runs on its own thread while step 4 observes the same rows
   (:mod:`monitor.core.background_insert`): the checkpoint waits on PostgreSQL only for what is
   left of the insert when observing is done.
4. Observe the new rows into per-(detector, model, version, slice, window) deltas and merge
   them into the stored window states (insert new keys, lock and merge existing ones). A
   ``ReferenceObserver`` observes against its version's active reference, looked up once per
   checkpoint (:class:`CheckpointReferences`) and the same one step 6 evaluates against.
5. Join labels with predictions, whichever came first: store labels (the last one wins) and
   fold each (prediction, label) change into the prediction's own window and slices (+1 for a
   new label, -1/+1 for a replaced one) for detectors that observe labels. Advisory locks on
   the events' buckets (:func:`monitor.store.labels.lock_join`) make a label and its prediction
   checkpointed by two processes at the same moment join exactly once.
6. Evaluate windows the predictions' event time has closed (end + lateness passed in every
   predictions partition with records left to read: the slowest one's, so a window is not
   judged while another partition still holds its events) and that changed since their last
   evaluation (:mod:`monitor.core.evaluation`), oldest first, whole windows until
   ``evaluate_budget_s`` is spent (the rest stay dirty for the next checkpoint:
   :attr:`CheckpointResult.pending_evaluation`). The labels topic has its own (the labels' event time), and a
   :class:`~monitor.contract.LabelDecision` detector's windows whose labels it has just
   settled (``label_settle_ms`` past their end; at a flush, all of them) are marked changed,
   so each gets its decisive look (:mod:`monitor.core.label_settle`), scheduled by event time; then
   the hooks (SLO burn rates, version comparisons, the alert engine) add their findings
   and alert state. With ``evaluate_workers`` worker processes
   (:mod:`monitor.core.evaluation_pool`) step 6 is pipelined
   (:mod:`monitor.core.evaluation_pipeline`): it writes the results of windows an earlier
   checkpoint submitted that are done and still fresh (their state rows unchanged), then
   submits the next closed windows without waiting, so they are evaluated while the next
   checkpoints ingest; a flush waits for them all.
7. Persist the slice-value sketches; wait for the dead letters the intake decided to be
   delivered (so a slow DLQ never holds the offset locks); lock the offset rows, check them as
   in step 1 (compare-and-set), and store the new offsets.
8. Commit. Only the caller, after this returns, updates metrics and sends alerts.

This module orchestrates; every statement it runs is a function of :mod:`monitor.store`.
Between steps (and between windows and detectors inside them) it checks :attr:`Checkpointer.abandon`:
a stopping process raises :class:`~monitor.errors.CheckpointAbandoned` there, the caller's
transaction rolls back, and the next run reads the same records again. :attr:`Checkpointer.clock`
sums the seconds of each stage (slicing, observe per detector, encode, PostgreSQL, evaluate).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np
import orjson
from sqlalchemy import Connection
from threadpoolctl import threadpool_limits

from monitor.contract import (
    PRECOMPUTED,
    Batch,
    Detector,
    Finding,
    LabelDecision,
    Precomputable,
)
from monitor.core.background_insert import insert_and_observe
from monitor.core.checkpoint_references import CheckpointReferences, ReferenceLookup
from monitor.core.decode_pool import Precomputes
from monitor.core.evaluation import WindowEvaluator
from monitor.core.evaluation_pipeline import EvaluationPipeline
from monitor.core.evaluation_pool import EvaluationPool
from monitor.core.ingest.intake import Intake
from monitor.core.label_join import LabelJoin
from monitor.core.label_settle import settled_until, slowest
from monitor.core.stages import StageClock
from monitor.core.windows import WindowAssigner
from monitor.errors import CheckpointAbandoned, Fenced, OffsetRegression
from monitor.store import (
    ingest_counts,
    offsets,
    predictions,
    rejected,
    window_states,
)
from monitor.store.keys import TopicPartition, WindowKey
from monitor.store.terms import Terms

log = logging.getLogger(__name__)


@dataclass
class CheckpointInput:
    group: str
    start: dict[TopicPartition, int]  # offset the records of this checkpoint started at
    next: dict[TopicPartition, int]  # offset after the last record read
    max_ts: dict[TopicPartition, int]  # highest event time seen per partition
    high_watermarks: dict[TopicPartition, int]
    batches: Sequence[Batch] = ()
    labels: Sequence[Any] = ()  # monitor.core.ingest.decode.LabelDecode
    rejected: Sequence[Any] = ()  # monitor.core.ingest.decode.Rejection
    evaluate_all: bool = False  # flush: evaluate every changed window, closed or not
    #: a flush that has read every held partition to its end: every label there is, is in,
    #: so each label decision's window has settled (its decisive look)
    read_to_end: bool = False
    #: held partitions read to their log end: they hold no watermark back (step 6)
    idle: frozenset[TopicPartition] = frozenset()
    parked: Sequence[Any] = ()  # monitor.core.ingest.decode.Parked, for the intake
    epochs: dict[TopicPartition, int] = field(default_factory=dict)  # claims held (fencing)


@dataclass
class CheckpointResult:
    accepted: dict[tuple[str, str], int] = field(default_factory=dict)  # (model, version) -> new
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> count
    labels: int = 0
    labels_joined: int = 0  # net (prediction, label) pairs joined by this checkpoint
    findings: list[tuple[WindowKey, Finding]] = field(default_factory=list)
    watermark_ms: int = 0
    pending_evaluation: bool = False  # closed windows left dirty for the next checkpoint


class DeadLetters(Protocol):
    """The dead-letter topic, as the checkpoint sees it."""

    def send(self, rejected: Sequence[Any]) -> None:
        """Produce these rejections (asynchronously)."""

    def flush(self) -> None:
        """Wait until everything sent is delivered; raise if anything was not."""


class CheckpointHook(Protocol):
    """Extra work inside the checkpoint transaction (e.g. SLO good/total buckets, alerts)."""

    def on_predictions(self, conn: Connection, batch: Batch) -> None: ...
    def before_commit(self, conn: Connection, result: CheckpointResult) -> None: ...


@runtime_checkable
class LabelHook(Protocol):
    """A hook that also wants the label-join changes of step 5: dicts with the prediction's
    columns plus ``label`` and ``weight`` (+1 a new label, -1 a replaced one), e.g. for accuracy
    SLOs."""

    def on_labels(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None: ...


@runtime_checkable
class AfterCommitHook(Protocol):
    """A hook with work for after the commit (metrics): the consumer calls it once committed."""

    def after_commit(self, result: CheckpointResult) -> None: ...


class Checkpointer:
    def __init__(self, assigner: WindowAssigner, lateness_ms: int, alpha: float, min_samples: int,
                 references: ReferenceLookup | None = None,
                 hooks: Sequence[CheckpointHook] = (), intake: Intake | None = None,
                 evaluate_budget_s: float = 2.0, warm_up_events: int = 0,
                 labels_topic: str | None = None, label_settle_ms: int = 3_600_000,
                 evaluate_workers: int = 0) -> None:
        self.assigner = assigner
        self.labels_topic = labels_topic  # its partitions' watermark is the labels' event time
        self.label_settle_ms = label_settle_ms
        self.intake = intake
        self.terms = Terms()  # slice and attribute ids of the stored predictions
        self.abandon = threading.Event()  # set by a stopping process: give up at the next step
        self.abandon_at: float | None = None  # or from this time.monotonic() on
        self.clock = StageClock()
        self.lateness_ms = lateness_ms
        self.by_name: dict[str, Detector] = {d.name: d for d in assigner.detectors}
        self.label_decisions = sorted(d.name for d in assigner.detectors
                                      if isinstance(d, LabelDecision) and d.label_decision)
        self.hooks: list[CheckpointHook] = list(hooks)
        self._label_hooks = [h for h in self.hooks if isinstance(h, LabelHook)]
        self.join = LabelJoin(assigner.detectors, bool(self._label_hooks), self.terms)
        self.pool = EvaluationPool(self.by_name, evaluate_workers)
        self.evaluator = WindowEvaluator(self.by_name, assigner.size_ms, lateness_ms, alpha,
                                         min_samples, self.label_decisions, evaluate_budget_s,
                                         warm_up_events, references, self._check, self.pool)
        self.evaluation = EvaluationPipeline(self.evaluator, self.pool)
        #: per-row observe work for the decode worker to run ahead, from the references the
        #: last committed checkpoint used (:meth:`committed`)
        self.precomputes: Precomputes = {}
        self._precomputers = [d for d in assigner.detectors if isinstance(d, Precomputable)]
        self._refs: CheckpointReferences | None = None

    def start(self) -> None:
        """Start the evaluation workers (if any); :meth:`close` stops them."""
        self.pool.start()

    def close(self) -> None:
        self.pool.close()

    def run(self, conn: Connection, cp: CheckpointInput,
            dead_letters: DeadLetters | None = None) -> CheckpointResult:
        """Steps 1-7; the caller owns the transaction and commits it (step 8). Events the
        intake rejects go to ``dead_letters`` as soon as they are decided, and are delivered
        before step 7 locks the offset rows (at least once: before the commit)."""
        result = CheckpointResult()
        clock = self._stage
        if self.evaluator.references is not None:
            self.evaluator.references.tick()
        refs = CheckpointReferences(self.evaluator.references, conn)
        with clock("postgres:offsets"):
            stored = self._check_offsets(conn, cp, lock=False)  # 1
            self.terms.begin()
        if self.intake is not None:
            with clock("intake"):
                extra = self.intake.begin(conn, cp.parked, cp.batches, cp.evaluate_all)
            cp = replace(cp, batches=[*cp.batches, *extra.batches],
                         rejected=[*cp.rejected, *extra.rejected])
            if dead_letters is not None and extra.rejected:
                dead_letters.send(extra.rejected)
        with clock("postgres:rejected"):
            self._store_rejected(conn, cp.rejected, result)  # 2
        with clock("postgres:predictions"):
            predictions.ensure_partitions(conn, [b.ts_ms for b in cp.batches])
        prepared: list[tuple[Batch, list[tuple[Any, np.ndarray]]]] = []
        for batch in cp.batches:
            with clock("slicing"):
                batch, within = _first_occurrences(batch)
                result.duplicates += within
                prepared.append((batch, self.assigner.slice_labels(batch)))
        deltas, fresh_rows = insert_and_observe(conn, prepared, self.assigner, refs, self.terms,
                                                clock)  # 3 and 4
        new_ids: list[str] = []
        for (fresh, _), (batch, _) in zip(fresh_rows, prepared, strict=True):
            result.duplicates += len(batch) - len(fresh)
            _count_accepted(fresh, result)
            new_ids += fresh.event_id.tolist()
            with clock("hooks"):
                for hook in self.hooks:
                    hook.on_predictions(conn, fresh)
        self._check("labels")
        with clock("labels"):
            result.labels, labelled = self.join.join(conn, new_ids, cp.labels)  # 5
            result.labels_joined = sum(r["weight"] for r in labelled)
            for hook in self._label_hooks:
                hook.on_labels(conn, labelled)
            self.join.observe(labelled, deltas)
        self._check("merge")
        # 4 (the merge, once, with prediction and label deltas)
        window_states.merge_deltas(conn, self.by_name, deltas.states, deltas.counts,
                                   self.assigner.size_ms, clock)
        with clock("postgres:counts"):
            ingest_counts.add(conn, result.accepted)
        # 6: the predictions' watermark closes windows; the labels' settles label decisions
        before = {tp: v[0] for tp, v in stored.items()}
        now = {tp: max(ts, before.get(tp, 0)) for tp, ts in cp.max_ts.items()} | {
            tp: ts for tp, ts in before.items() if tp not in cp.max_ts}
        # The watermark (metric, SLO minutes) is the latest event time read; windows close by
        # the slowest partition with records left, so a window is not judged (and judged again
        # when the rest arrive) while another partition still holds its events: with the latest
        # time, 182 of bench/ingest.py's 312 windows per detector were evaluated 2-3 times.
        result.watermark_ms = max((ts for tp, ts in now.items() if tp[0] != self.labels_topic),
                                  default=0)
        closing = slowest(now, cp.idle, self.labels_topic, labels=False) or 0
        settled = (None if cp.evaluate_all and cp.read_to_end
                   else settled_until(now, cp.idle, self.labels_topic, self.label_settle_ms,
                                        self.lateness_ms))
        # One BLAS/OpenMP thread: evaluation's matrices are tiny (17 x 17 covariances, a
        # 17-feature logistic regression), where a second thread only waits for the first; on a
        # busy machine the spinning threads made embedding_drift's evaluation 4x slower in wall
        # time (bench/evaluate.py --wall: 128 s with 2 threads, 32 s with 1).
        with clock("evaluate"), threadpool_limits(limits=1):
            result.findings, result.pending_evaluation = self.evaluation.step(
                conn, closing, cp.evaluate_all, refs, settled, self._stopping_until())
        self._check("hooks")
        with clock("hooks"):
            for hook in self.hooks:
                hook.before_commit(conn, result)
        with clock("postgres:offsets"):
            if self.intake is not None:  # 7
                self.intake.finish(conn)
            if dead_letters is not None:  # delivered before the offset rows are locked
                dead_letters.flush()
            stored = self._check_offsets(conn, cp, lock=True)
            offsets.save(conn, cp.group, cp.next,
                         {tp: max(cp.max_ts.get(tp, 0), stored.get(tp, (0, 0))[0])
                          for tp in cp.next}, cp.high_watermarks)
        self._check("commit")
        self._refs = refs
        return result

    def abandoning(self) -> bool:
        """True once a stopping process gave up the checkpoint in flight (no thread needs to
        wake up for it: the deadline is read by the checkpoint itself)."""
        return self.abandon.is_set() or (self.abandon_at is not None and
                                         time.monotonic() >= self.abandon_at)

    def evaluation_ready(self) -> bool:
        """False while evaluations submitted by a checkpoint are still running (then a
        checkpoint for them alone would write nothing)."""
        return self.evaluation.ready()

    def _stopping_until(self) -> float | None:
        """When stopping: until when step 6 may wait for evaluations in flight (half the time
        left before the checkpoint is abandoned, the rest for writing and committing)."""
        if self.abandon.is_set():
            return time.monotonic()
        if self.abandon_at is None:
            return None
        now = time.monotonic()
        return now + max(self.abandon_at - now, 0) / 2

    def _check(self, step: str) -> None:
        if self.abandoning():
            raise CheckpointAbandoned(step)

    @contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        """Time a stage in :attr:`clock`, giving up first if the process is stopping."""
        self._check(name)
        with self.clock(name):
            yield

    # -- 1 ---------------------------------------------------------------------------------
    def _check_offsets(self, conn: Connection, cp: CheckpointInput,
                       lock: bool) -> dict[TopicPartition, tuple[int, int, int]]:
        stored = offsets.lock(conn, cp.group, list(cp.next), for_update=lock)
        fenced = sorted(tp for tp, epoch in cp.epochs.items()
                        if tp in cp.next and stored.get(tp, (0, 0, 0))[2] != epoch)
        if fenced:
            raise Fenced(cp.group, fenced)
        for tp, start in cp.start.items():
            have = stored.get(tp, (0, 0, 0))[1]
            if have != start or cp.next[tp] < start:
                raise OffsetRegression(tp[0], tp[1], have, start)
        return stored

    # -- 2 ---------------------------------------------------------------------------------
    def _store_rejected(self, conn: Connection, rejections: Sequence[Any], result: CheckpointResult) -> None:
        rows = []
        for r in rejections:
            model = version = None
            try:  # best effort, so `vitmon status` can attribute rejects to a model version
                body = orjson.loads(r.value) if r.value else None
                if isinstance(body, dict):
                    model = body.get("model") if isinstance(body.get("model"), str) else None
                    v = body.get("model_version")
                    version = v if isinstance(v, str) else None
            except orjson.JSONDecodeError:
                pass
            rows.append({"topic": r.topic, "p": r.partition, "o": r.offset, "reason": r.reason,
                         "detail": r.detail[:1000], "eid": r.event_id, "model": model,
                         "ver": version, "key": r.key, "raw": r.value})
            result.rejected[r.reason] = result.rejected.get(r.reason, 0) + 1
        rejected.insert(conn, rows)

    # -- 7 ---------------------------------------------------------------------------------
    def committed(self) -> None:
        """Call after the transaction commits: ids and intake decisions are now durable."""
        self.terms.committed()
        if self.intake is not None:
            self.intake.committed()
        if self._refs is not None and self._precomputers:
            changed = self._refs.pinned()
            self.precomputes = {k: v for k, v in self.precomputes.items() if k not in changed} | {
                key: tuple((PRECOMPUTED.format(d.name, fn.key), fn) for d in self._precomputers
                           if (fn := d.precompute(ref)) is not None)
                for key, ref in changed.items() if ref is not None}
        self._refs = None


def _first_occurrences(batch: Batch) -> tuple[Batch, int]:
    """Drop repeated event_ids inside one batch (the first occurrence stays)."""
    ids = batch.event_id.tolist()
    if len(set(map(str, ids))) == len(ids):  # the usual case, without sorting the strings
        return batch, 0
    _, first = np.unique(batch.event_id.astype(str), return_index=True)
    if len(first) == len(batch):
        return batch, 0
    first.sort()
    return batch.take(first), len(batch) - len(first)


def _count_accepted(batch: Batch, result: CheckpointResult) -> None:
    if len(batch) == 0:
        return
    model = str(batch.model[0])
    versions, counts = np.unique(batch.model_version.astype(str), return_counts=True)
    for version, count in zip(versions, counts):
        key = (model, str(version))
        result.accepted[key] = result.accepted.get(key, 0) + int(count)
