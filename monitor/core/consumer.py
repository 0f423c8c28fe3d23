"""The consume loop: poll -> decode -> buffer -> checkpoint (one transaction) -> metrics/alerts.

Offsets live in PostgreSQL and are committed with the results they produced, so a consumer
killed at any moment restarts from the last committed checkpoint and recounts nothing. While
PostgreSQL is unreachable the loop stops polling (memory stays bounded by one checkpoint's
buffer) and retries the same checkpoint with backoff.

Stopping (SIGTERM): the loop stops polling; the checkpoint in flight gets
``checkpoint.stop_grace_s`` to commit, then is abandoned at its next step (its transaction rolls
back; the next run reads those records again), so a stop takes seconds at any backlog.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Engine

from monitor.core.checkpoint import (
    AfterCommitHook,
    Checkpointer,
    CheckpointInput,
    CheckpointResult,
)
from monitor.core.ingest import decode
from monitor.core.ingest.events import REASON_HEADER
from monitor.core.kafka import Record, Sink, Source
from monitor.core.metrics import Metrics
from monitor.core.settings import CheckpointSettings, DatabaseSettings, KafkaSettings
from monitor.core.stages import StageClock
from monitor.errors import CheckpointAbandoned
from monitor.store import catalog, offsets
from monitor.store.db import with_retry
from monitor.store.keys import TopicPartition

log = logging.getLogger(__name__)

LAG_REFRESH_S = 5.0


@dataclass
class _Buffer:
    """Records read since the last checkpoint, already decoded."""

    start: dict[TopicPartition, int] = field(default_factory=dict)
    next: dict[TopicPartition, int] = field(default_factory=dict)
    batches: list[Any] = field(default_factory=list)
    labels: list[Any] = field(default_factory=list)
    rejected: list[Any] = field(default_factory=list)
    parked: list[Any] = field(default_factory=list)  # held for the checkpoint's intake
    events: int = 0
    opened_at: float = field(default_factory=time.monotonic)


def load_positions(engine: Engine, group: str, tps: Sequence[TopicPartition]
                   ) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    """Committed next-offsets and watermarks for ``tps`` (0 for partitions never committed)."""
    with engine.connect() as conn:
        stored = offsets.positions(conn, group)
    return ({tp: stored.get(tp, (0, 0))[0] for tp in tps},
            {tp: stored.get(tp, (0, 0))[1] for tp in tps})


def load_catalog(engine: Engine) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Learnt embedding dimensions and admitted slice values (in admission order)."""
    with engine.connect() as conn:
        return catalog.load(conn)


class Consumer:
    def __init__(self, kafka: KafkaSettings, database: DatabaseSettings,
                 checkpoint: CheckpointSettings, engine: Engine, source: Source, sink: Sink,
                 checkpointer: Checkpointer, metrics: Metrics, tps: Sequence[TopicPartition],
                 after_commit: Sequence[AfterCommitHook] = ()) -> None:
        self.kafka, self.database, self.checkpoint = kafka, database, checkpoint
        self.engine = engine
        self.source = source
        self.sink = sink
        self.cp = checkpointer
        self.metrics = metrics
        self.tps = list(tps)
        self.after_commit = list(after_commit)
        self.stop_event = threading.Event()
        self.positions: dict[TopicPartition, int] = {}
        self.max_ts: dict[TopicPartition, int] = {}
        self._lag_read_at = float("-inf")
        self.read_positions: dict[TopicPartition, int] = {}
        self._inflight: Future[None] | None = None
        self._committed_at = float("-inf")  # monotonic time of the last commit
        self._worker: ThreadPoolExecutor | None = None
        self._pending_eval = False  # the last checkpoint left closed windows to evaluate
        self.stages = StageClock()  # totals since start, logged at the end

    def _retry(self, fn: Any, what: str) -> Any:
        return with_retry(fn, initial_s=self.database.retry_initial_s,
                          max_s=self.database.retry_max_s, what=what)

    def start(self) -> None:
        self.positions, self.max_ts = self._retry(
            lambda: load_positions(self.engine, self.kafka.group, self.tps), "load offsets")
        self._retry(self._register_partitions, "register partitions")
        self.read_positions = dict(self.positions)
        self.source.assign(dict(self.positions))
        log.info("consumer assigned partitions=%s", ",".join(f"{t}[{p}]@{o}" for (t, p), o
                                                             in sorted(self.positions.items())))

    def _register_partitions(self) -> None:
        """An offsets row for every assigned partition, so status shows idle ones too."""
        with self.engine.begin() as conn:
            offsets.register(conn, self.kafka.group, self.tps)

    def run(self, exit_when_idle_s: float | None = None) -> None:
        """Consume until stopped (or, with ``exit_when_idle_s``, until caught up and idle).

        Checkpoints run on one worker thread, in order, while this thread polls and decodes
        the next buffer: PostgreSQL's work overlaps decoding. At most one checkpoint is in
        flight and one buffer filling, so memory stays bounded by two buffers."""
        self.start()
        buf = _Buffer()
        idle_since = time.monotonic()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint") as worker:
            self._worker = worker
            try:
                while not self.stop_event.is_set():
                    records = self.source.poll(self.kafka.poll_max_records, 0.5)
                    if records:
                        idle_since = time.monotonic()
                        self._add(buf, records)
                    # While a checkpoint is in flight the buffer keeps filling up to max_events:
                    # under a backlog, checkpoints grow instead of waiting on each other.
                    busy = self._inflight is not None and not self._inflight.done()
                    if busy:  # idle means no records *and* no checkpoint at work
                        idle_since = time.monotonic()
                    due = (buf.events >= self.checkpoint.max_events or (not busy and (
                        not records or
                        time.monotonic() - buf.opened_at >= self.checkpoint.interval_s)))
                    if (buf.next and due) or (not records and not busy and self._pending_eval):
                        self._pending_eval = False
                        self._submit(buf)
                        buf = _Buffer()
                    elif exit_when_idle_s is not None and not records and \
                            self._idle_for(idle_since) >= exit_when_idle_s:
                        self._submit(buf, flush=True)
                        self._wait_inflight()
                        log.info("caught up and idle, exiting idle_s=%.1f", exit_when_idle_s)
                        return
                if buf.next:
                    self._submit(buf)
                self._wait_inflight()
            except CheckpointAbandoned as exc:
                log.info("checkpoint abandoned, stopping step=%s", exc.step)
            finally:
                self._inflight = None
                totals = self.stages.drain()
                log.info("stage seconds %s", " ".join(f"{k}={v:.3f}" for k, v in sorted(totals.items())))

    def _idle_for(self, records_at: float) -> float:
        """Seconds since the last records and the last commit; 0 while a checkpoint is in
        flight (a slow one, e.g. retrying while PostgreSQL is down, is not idleness)."""
        if self._inflight is not None and not self._inflight.done():
            return 0.0
        return time.monotonic() - max(records_at, self._committed_at)

    def stop(self) -> None:
        """Stop polling; abandon the checkpoint in flight after ``stop_grace_s``."""
        self.stop_event.set()
        self.cp.abandon_at = time.monotonic() + self.checkpoint.stop_grace_s

    # ------------------------------------------------------------------------------------
    def _add(self, buf: _Buffer, records: list[Record]) -> None:
        t0 = time.perf_counter()
        preds, labels = [], []
        for r in records:
            tp = (r.topic, r.partition)
            buf.start.setdefault(tp, self.read_positions.get(tp, r.offset))
            buf.next[tp] = self.read_positions[tp] = r.offset + 1
            (labels if r.topic == self.kafka.labels_topic else preds).append(r)
        if preds:
            out = decode.decode_predictions(preds, self.cp.embedding_dims, gate=self.cp.intake)
            buf.parked.extend(out.parked)
            for batch in out.batches.values():
                buf.batches.append(batch)
                self._advance_watermarks(batch)
            buf.rejected.extend(out.rejected)
        if labels:
            out_l = decode.decode_labels(labels)
            buf.labels.append(out_l)
            buf.rejected.extend(out_l.rejected)
        buf.events += len(records)
        took = time.perf_counter() - t0
        self.metrics.stage_seconds.labels("decode").observe(took)
        self.stages.add("decode", took)

    def _advance_watermarks(self, batch: Any) -> None:
        parts = batch.extras["_partition"]
        topic = self.kafka.predictions_topic
        for p in np.unique(parts):
            tp = (topic, int(p))
            self.max_ts[tp] = max(self.max_ts.get(tp, 0), int(batch.ts_ms[parts == p].max()))

    def _send_dead_letters(self, rejected: Sequence[Any]) -> None:
        """At-least-once to the DLQ topic, before the checkpoint commits (the table copy in
        ``rejected_events`` is exactly-once)."""
        for r in rejected:
            self.sink.produce(self.kafka.dlq_topic, r.value or b"", key=r.key, headers=[
                (REASON_HEADER, r.reason.encode()), ("vitmon-reject-detail", r.detail.encode()),
                ("vitmon-source", f"{r.topic}/{r.partition}/{r.offset}".encode())])
        if rejected:
            self.sink.flush(30)

    def _submit(self, buf: _Buffer, flush: bool = False) -> None:
        """Hand a buffer to the checkpoint worker (waiting for the previous one first)."""
        highs: dict[TopicPartition, int] = {}
        if time.monotonic() - self._lag_read_at >= LAG_REFRESH_S or flush:
            try:  # a broker round trip per partition: lag is refreshed, not read per checkpoint
                highs = self.source.end_offsets(self.tps)
                self._lag_read_at = time.monotonic()
            except Exception as exc:  # lag is informative only; never block a checkpoint on it
                log.warning("could not read end offsets error=%r", exc)
        cp = CheckpointInput(group=self.kafka.group, start=dict(buf.start), next=dict(buf.next),
                             max_ts=dict(self.max_ts), high_watermarks=highs,
                             batches=buf.batches, labels=buf.labels, rejected=buf.rejected,
                             evaluate_all=flush, parked=buf.parked)
        self._wait_inflight()
        self._inflight = self._worker.submit(self._checkpoint, cp, buf.rejected)

    def _wait_inflight(self) -> None:
        """Block until the checkpoint in flight committed; re-raise what it raised."""
        if self._inflight is not None:
            inflight, self._inflight = self._inflight, None
            inflight.result()

    def _checkpoint(self, cp: CheckpointInput, rejected: Sequence[Any]) -> None:
        t0 = time.perf_counter()
        self._send_dead_letters(rejected)
        attempts = {"n": 0}

        def attempt() -> CheckpointResult:
            attempts["n"] += 1
            if attempts["n"] > 1:
                self.metrics.db_retries.inc()
            with self.engine.begin() as conn:
                result = self.cp.run(conn, cp)
                self._send_dead_letters(result.dead_letters)  # decided in it; before the commit
                return result

        try:
            result = with_retry(attempt, initial_s=self.database.retry_initial_s,
                                max_s=self.database.retry_max_s, what="checkpoint",
                                should_stop=self.cp.abandoning)
        except Exception as exc:
            if self.cp.abandoning() and not isinstance(exc, CheckpointAbandoned):
                raise CheckpointAbandoned("database retry") from exc
            raise
        self._pending_eval = result.pending_evaluation
        self.cp.committed()
        self.positions.update(cp.next)
        self._committed_at = time.monotonic()
        self._after(result, cp.high_watermarks, time.perf_counter() - t0)

    def _after(self, result: CheckpointResult, highs: dict[TopicPartition, int], took: float) -> None:
        k = self.kafka
        self.metrics.stage_seconds.labels("checkpoint").observe(took)
        for stage, seconds in self.cp.clock.drain().items():
            self.metrics.stage_seconds.labels(stage).observe(seconds)
            self.stages.add(stage, seconds)
        self.metrics.record_checkpoint(k.predictions_topic, sum(result.accepted.values()),
                                       result.duplicates, result.rejected, k.labels_topic,
                                       result.labels)
        for tp, high in highs.items():
            self.metrics.lag.labels(tp[0], str(tp[1])).set(max(high - self.positions.get(tp, 0), 0))
        self.metrics.watermark.set(result.watermark_ms / 1000.0)
        self.metrics.record_findings(result.findings)
        log.info("checkpoint committed accepted=%d duplicates=%d rejected=%d labels=%d "
                 "findings=%d took_s=%.3f", sum(result.accepted.values()), result.duplicates,
                 sum(result.rejected.values()), result.labels, len(result.findings), took)
        for hook in self.after_commit:
            hook.after_commit(result)
