"""The consume loop: poll -> decode -> buffer -> checkpoint (one transaction) -> metrics/alerts.

Offsets live in PostgreSQL and are committed with the results they produced, so a consumer killed at any
moment restarts from the last committed checkpoint and recounts nothing. While a checkpoint runs with
the buffer full, the loop takes no records (it holds, then, past a bound, pauses fetching and polls on,
so the group still sees it alive: GroupMember._pause); memory stays bounded by one buffer and one in flight.

Stopping (SIGTERM): the loop stops polling; the checkpoint in flight gets ``checkpoint.stop_grace_s`` to
commit, then is abandoned at its next step (its transaction rolls back; the next run reads those records
again), so a stop takes seconds at any backlog.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
from sqlalchemy import Engine

from monitor.core.checkpoint import (
    AfterCommitHook,
    Checkpointer,
    CheckpointInput,
    CheckpointResult,
)
from monitor.core.coalesce import coalesce
from monitor.core.decode_pool import DecodePool
from monitor.core.group_member import GroupMember
from monitor.core.health import Health
from monitor.core.held import Held
from monitor.core.ingest import decode
from monitor.core.kafka import Record, Sink, Source
from monitor.core.kafka.dead_letters import DeadLetterTopic
from monitor.core.log_ends import LogEnds
from monitor.core.metrics import Metrics
from monitor.core.read_buffer import Part, ReadBuffer, split_poll
from monitor.core.settings import CheckpointSettings, DatabaseSettings, KafkaSettings
from monitor.core.stages import StageClock
from monitor.errors import CheckpointAbandoned, Fenced
from monitor.store.db import with_retry
from monitor.store.keys import TopicPartition

log = logging.getLogger(__name__)

class Consumer(GroupMember):
    """Reads partitions, checkpoints them, and follows the group's assignment.

    Under a consumer group (``kafka.partitions`` unset) it is the group's
    :class:`~monitor.core.kafka.Rebalance` listener: on assignment it claims the partitions in
    PostgreSQL (their epoch goes up, so an earlier owner can no longer commit) and resumes at
    their stored offsets; on revocation or loss it drops the records it read but has not
    committed, and lets the checkpoint in flight finish or be fenced. A checkpoint refused
    because another process claimed a partition (:class:`Fenced`) rolls back; those partitions
    are dropped and the others read again from their committed offsets. With
    ``kafka.partitions`` it claims the listed partitions at start and a fence is fatal.
    """

    def __init__(self, kafka: KafkaSettings, database: DatabaseSettings,
                 checkpoint: CheckpointSettings, engine: Engine, source: Source, sink: Sink,
                 checkpointer: Checkpointer, metrics: Metrics, tps: Sequence[TopicPartition],
                 after_commit: Sequence[AfterCommitHook] = (), health: Health | None = None) -> None:
        self.kafka, self.database, self.checkpoint = kafka, database, checkpoint
        self.engine = engine
        self.source = source
        self.sink = sink
        self.dlq = DeadLetterTopic(sink, kafka.dlq_topic)
        self.cp = checkpointer
        self.metrics = metrics
        self.static_tps = [] if kafka.use_group else list(tps)
        self.held = Held()
        self.after_commit = list(after_commit)
        self.health = health
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.stop_event = threading.Event()
        self._buf = ReadBuffer()
        self.decoder = DecodePool(kafka.decode_workers)
        #: the parts of polls sent to the decode worker (or of labels only, behind them), oldest
        #: first; each is added to the buffer filling when its answer is taken
        self._decoding: deque[Part] = deque()
        self.log_ends = LogEnds(source, self.held, kafka.predictions_topic)
        self._inflight: Future[CheckpointInput] | None = None
        self._worker: ThreadPoolExecutor | None = None
        self._paused: list[TopicPartition] = []
        self._mirror: dict[TopicPartition, int] = {}  # offsets to commit to the Kafka group
        self._idle_since = time.monotonic()
        self._committed_at = float("-inf")  # monotonic time of the last commit
        self._pending_eval = False  # closed windows left to evaluate, or evaluations in flight
        self.stages = StageClock()  # totals since start, logged at the end

    def _new_buffer(self) -> ReadBuffer:
        self._decoded()  # the poll in the worker lands in the buffer being dropped, as in-process
        return ReadBuffer()

    def assigned(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        self._decoded()
        return super().assigned(tps)

    @property
    def tps(self) -> list[TopicPartition]:
        return self.held.tps

    def _retry(self, fn: Any, what: str) -> Any:
        return with_retry(fn, initial_s=self.database.retry_initial_s,
                          max_s=self.database.retry_max_s, what=what, should_stop=self._waiting)

    def _waiting(self) -> bool:
        """Called between database retries: waiting on PostgreSQL is progress (liveness); a
        checkpoint stops retrying once the process is stopping."""
        if self.health is not None:
            self.health.beat()
        return self.cp.abandoning()

    def start(self) -> None:
        if self.kafka.use_group:
            topics = [self.kafka.predictions_topic, self.kafka.labels_topic]
            self.source.subscribe(topics, self)
            log.info("consumer subscribed group=%s topics=%s", self.kafka.group, ",".join(topics))
        else:
            self.source.assign(self._claim(self.static_tps))

    # -- the loop ------------------------------------------------------------------------------
    def run(self, exit_when_idle_s: float | None = None) -> None:
        """Consume until stopped (or, with ``exit_when_idle_s``, until caught up and idle).

        Checkpoints run on one worker thread, in order, while this thread polls and decodes the
        next buffer. When it is due while one is in flight, the loop holds (GroupMember._pause)."""
        self.start()
        self._idle_since, flushed = time.monotonic(), False
        try:
            self.cp.start()  # evaluation workers import while the first polls come in
            self.decoder.start()
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint") as worker:
                self._worker = worker
                try:
                    while not self.stop_event.is_set():
                        if self.health is not None:
                            self.health.beat()
                        holding = self._paused or self._hold_until is not None
                        records = self._poll(self.cp.intake.poll_size(
                            self.kafka.poll_max_records, self._committed_at > float("-inf")),
                            0.1 if holding or exit_when_idle_s is not None else 0.5, self._inflight)
                        self._harvest(block=False)
                        if holding and self._inflight is None:  # held only while one runs
                            self._release()
                            if not flushed:  # nothing could arrive while held: not idleness
                                self._idle_since = time.monotonic()
                        self._mirror_commits()
                        self.log_ends.refresh(self.metrics, self.health)
                        if records:
                            self._idle_since, flushed = time.monotonic(), False
                            self._add(records)
                        busy = self._inflight is not None
                        if self._due(polled=bool(records)) or (
                                not records and not busy and self._pending_eval
                                and self.cp.evaluation_ready()):
                            self._pending_eval = False
                            self._submit(force=True)
                        # Idle since the last records or commit (not the flush's: S s are past)
                        elif exit_when_idle_s is not None and not records and self.held and \
                                not busy and time.monotonic() - (self._idle_since if flushed else max(
                                    self._idle_since, self._committed_at)) >= exit_when_idle_s:
                            if flushed and self.log_ends.caught_up() and not self._pending_eval:
                                log.info("caught up and idle, exiting idle_s=%.1f", exit_when_idle_s)
                                return
                            # Flush once (then exit when nothing is left), but not with records
                            # left to fetch (after a pause): it would judge windows half-read
                            if not flushed and self.log_ends.read_to_end(ends := self.log_ends.read()):
                                self._submit(flush=True, ends=ends)
                                self._idle_since, flushed = time.monotonic() - exit_when_idle_s, True
                    self._harvest(block=True)
                    if self._buf.next:
                        self._submit()
                    self._harvest(block=True)
                except CheckpointAbandoned as exc:
                    log.info("checkpoint abandoned, stopping step=%s", exc.step)
                finally:
                    self._inflight = None
                    self._worker = None
                    totals = self.stages.drain()
                    log.info("stage seconds %s", " ".join(f"{k}={v:.3f}" for k, v in sorted(totals.items())))
        finally:  # after the checkpoint thread is done: no worker outlives the loop
            self._decoding.clear()
            self.decoder.close()
            self.cp.close()

    def _due(self, polled: bool) -> bool:
        """Checkpoint what was read now? While one is in flight, once max_events are read (then
        the loop holds); at once with parked events the intake will settle, or with a backlog
        and the worker free (LogEnds.behind)."""
        buf, c = self._buf, self.checkpoint
        events = buf.events + sum(p.events for p in self._decoding)  # decoded or not
        return events > 0 and (events >= c.max_events or buf.settles or (self._inflight is None and (
            not polled or time.monotonic() - buf.opened_at >= c.interval_s
            or self.log_ends.behind(events, c.max_events))))

    def _hand_over(self) -> float:
        """While a poll waits for the decode worker, a checkpoint done meanwhile is harvested and
        the next takes the buffer as decoded so far (the critical path); the seconds it took."""
        t0 = time.perf_counter()
        if self._inflight is not None and self._inflight.done():
            self._harvest(block=False)
            self._release()
        if self._inflight is None and self._due(polled=True):
            self._submit()
        return time.perf_counter() - t0

    def stop(self) -> None:
        """Stop polling; abandon the checkpoint in flight after ``stop_grace_s``."""
        self.stop_event.set()
        self.cp.abandon_at = time.monotonic() + self.checkpoint.stop_grace_s

    def _submit(self, flush: bool = False, force: bool = False,
                ends: dict[TopicPartition, int] | None = None) -> None:
        """Hand the filling buffer to the checkpoint worker (``ends``: the log ends a flush has
        just read); while one is in flight, pause fetching instead (the buffer waits)."""
        if self._inflight is not None:
            self._pause()
            return
        # The buffer goes as decoded so far: the requests still in the worker land in the next
        # one (a flush takes every record read; an empty buffer waits for the oldest request)
        if flush or not self._buf.next:
            self._decoded(None if flush else 1)
        self._decoded(ready=True)
        buf, self._buf = self._buf, ReadBuffer()
        if any(tp not in self.held or self.held.committed[tp] != start
               for tp, start in buf.start.items()):
            self._rewind()  # read after a checkpoint that failed, or of a dropped partition
            return
        if not buf.next and not (flush or force):
            return
        cp = CheckpointInput(group=self.kafka.group, start=dict(buf.start), next=dict(buf.next),
                             # every held partition's: a checkpoint evaluating windows left
                             max_ts=dict(self.held.max_ts),  # over must see the watermark
                             high_watermarks={tp: h for tp, h in self.log_ends.take_highs().items()
                                              if tp in self.held},
                             batches=coalesce(buf.batches), labels=buf.labels,
                             rejected=buf.rejected, evaluate_all=flush, parked=buf.parked,
                             read_to_end=flush and self.log_ends.read_to_end(ends),
                             idle=self.log_ends.idle(ends),
                             epochs={tp: self.held.epochs[tp] for tp in buf.next})
        self._inflight = self._worker.submit(self._checkpoint, cp)
        if buf.settles:  # what is read before it commits would park too
            self._pause()

    def _harvest(self, block: bool) -> None:
        """Take the result of the checkpoint in flight, if done (or ``block``): committed
        offsets move on (and go to the Kafka group), a fence drops its partitions."""
        inflight = self._inflight
        if inflight is None or not (block or inflight.done()):
            return
        self._inflight = None
        try:
            cp = inflight.result()
        except Fenced as exc:
            self._on_fenced(exc, exc.checkpoint)
            return
        kept = {tp: cp.next[tp] for tp in self.held.same_claim(
            {tp: cp.epochs[tp] for tp in cp.next if tp in cp.epochs})}
        self.held.committed.update(kept)
        self._mirror.update(kept)

    def _checkpoint(self, cp: CheckpointInput) -> CheckpointInput:
        t0 = time.perf_counter()
        self.dlq.send(cp.rejected)  # the decoder's: delivered before the transaction begins
        self.dlq.flush()
        attempts = {"n": 0}

        def attempt() -> CheckpointResult:
            attempts["n"] += 1
            if attempts["n"] > 1:
                self.metrics.db_retries.inc()
            with self.engine.begin() as conn:  # the intake's go to the DLQ within it
                return self.cp.run(conn, cp, self.dlq)

        try:
            result = self._retry(attempt, "checkpoint")
        except Fenced as exc:
            exc.checkpoint = cp
            raise
        except Exception as exc:
            if self.cp.abandoning() and not isinstance(exc, CheckpointAbandoned):
                raise CheckpointAbandoned("database retry") from exc
            raise
        self._pending_eval = result.pending_evaluation
        self._committed_at = time.monotonic()
        self.cp.committed()
        self._after(result, cp, time.perf_counter() - t0)
        return cp

    # ------------------------------------------------------------------------------------
    def _add(self, records: list[Record]) -> None:
        """Take a poll: in the decode worker (``kafka.decode_workers``) a request per part, each
        added to the buffer by :meth:`_decoded` (before anything reads the buffer or the
        watermarks) while the next polls come in; else decoded here, at once."""
        t0 = time.perf_counter()
        chunk = self.decoder.chunk if self.decoder.workers else len(records)  # else one part
        parts = split_poll(records, self.held.read, self.kafka.labels_topic, chunk)
        if self.decoder.workers:
            gate = self.cp.intake.snapshot()
            for part in parts:
                if part.predictions:
                    while self.decoder.full:
                        t0 += self._decoded(1) + self._hand_over()  # their own stages
                    self.decoder.submit(part.predictions, gate, self.cp.precomputes)
                self._decoding.append(part)  # labels only: behind the requests before them
        elif parts:
            (part,) = parts
            self._apply(part, decode.decode_predictions(part.predictions, {}, gate=self.cp.intake)
                        if part.predictions else None)
        self._stage("decode", time.perf_counter() - t0)

    def _decoded(self, n: int | None = None, ready: bool = False) -> float:
        """Add the (``n`` oldest; with ``ready``, those answered already) parts in the decode
        worker to the buffer, waiting for them; the seconds it took (the wait: ``decode_wait``)."""
        start = time.perf_counter()
        while self._decoding and (n is None or n > 0):
            part = self._decoding[0]
            if ready and part.predictions and not self.decoder.ready():
                break
            self._decoding.popleft()
            t0 = time.perf_counter()
            out = self.decoder.result(self.health.beat if self.health is not None else None) \
                if part.predictions else None
            t1 = time.perf_counter()
            self._apply(part, out)
            self._stage("decode_wait", t1 - t0)
            self._stage("decode", time.perf_counter() - t1)
            n = None if n is None else n - 1
        return time.perf_counter() - start

    def _stage(self, name: str, took: float) -> None:
        self.metrics.stage_seconds.labels(name).observe(took)
        self.stages.add(name, took)

    def _apply(self, part: Part, out: decode.PredictionDecode | None) -> None:
        buf, labels = self._buf, part.labels
        buf.cover(part.span, part.events)
        if out is not None:
            buf.parked.extend(out.parked)
            if out.parked and not buf.settles:
                buf.settles = self.cp.intake.settles({(p.model, p.model_version) for p in out.parked})
            # Parked events (a version not yet admitted, its dimension undecided) are accepted
            # or rejected by the checkpoint; their event time closes windows all the same, or a
            # stream that starts with a new version would evaluate nothing until it is idle.
            for p in out.parked:
                tp = (p.topic, p.partition)
                if tp in self.held:
                    self.held.advance(tp, p.ts_ms)
            for batch in out.batches.values():
                buf.batches.append(batch)
                self._advance_watermarks(batch)
            buf.rejected.extend(out.rejected)
        if labels:
            buf.labels.append(out_l := decode.decode_labels(labels))
            buf.rejected.extend(out_l.rejected)
            # The labels partitions' watermark: how far the labels' own event time has come
            # (when a label-based window's labels have settled; checkpoint step 6).
            for p in np.unique(out_l.partition):
                tp = (self.kafka.labels_topic, int(p))
                if tp in self.held:
                    self.held.advance(tp, out_l.ts_ms[out_l.partition == p])

    def _advance_watermarks(self, batch: Any) -> None:
        parts = batch.extras["_partition"]
        topic = self.kafka.predictions_topic
        for p in np.unique(parts):
            tp = (topic, int(p))
            if tp in self.held:
                self.held.advance(tp, batch.ts_ms[parts == p])

    def _after(self, result: CheckpointResult, cp: CheckpointInput, took: float) -> None:
        k = self.kafka
        self.metrics.stage_seconds.labels("checkpoint").observe(took)
        for stage, seconds in self.cp.clock.drain().items():
            self.metrics.stage_seconds.labels(stage).observe(seconds)
            self.stages.add(stage, seconds)
        self.metrics.record_checkpoint(k.predictions_topic, sum(result.accepted.values()),
                                       result.duplicates, result.rejected, k.labels_topic,
                                       result.labels)
        for tp, high in cp.high_watermarks.items():
            if tp in self.held:
                self.metrics.lag.labels(tp[0], str(tp[1])).set(
                    max(high - cp.next.get(tp, self.held.committed.get(tp, 0)), 0))
        self.metrics.watermark.set(result.watermark_ms / 1000.0)
        self.metrics.record_findings(result.findings)
        log.info("checkpoint committed accepted=%d duplicates=%d rejected=%d labels=%d "
                 "findings=%d parked=%d took_s=%.3f", sum(result.accepted.values()),
                 result.duplicates, sum(result.rejected.values()), result.labels,
                 len(result.findings), len(cp.parked), took)
        for hook in self.after_commit:
            hook.after_commit(result)
