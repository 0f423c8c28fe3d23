"""The held partitions' log ends, as the broker reports them.

One reader for four questions the consume loop asks: the lag metric (refreshed every
``LAG_REFRESH_S``, which is also the readiness probe's proof that the broker answers), whether
every held partition is committed to its end (``--exit-when-idle``), read to its end (a flush
settles label decisions) and which partitions are idle (read to their end: their event time
holds no watermark back, checkpoint step 6).
"""

from __future__ import annotations

import logging
import time

from monitor.core.health import Health
from monitor.core.held import Held
from monitor.core.kafka import Source
from monitor.core.metrics import Metrics
from monitor.store.keys import TopicPartition

log = logging.getLogger("monitor.core.consumer")

LAG_REFRESH_S = 5.0


class LogEnds:
    def __init__(self, source: Source, held: Held, predictions_topic: str) -> None:
        self.source, self.held, self.predictions_topic = source, held, predictions_topic
        self.highs: dict[TopicPartition, int] = {}  # read by the last refresh, not yet stored
        self.ends: dict[TopicPartition, int] = {}  # the last log ends read, per partition
        self.read_at = float("-inf")

    def refresh_soon(self) -> None:
        """A new assignment: read its ends at the next refresh."""
        self.read_at = float("-inf")

    def forget(self, tp: TopicPartition) -> None:
        self.highs.pop(tp, None)

    def take_highs(self) -> dict[TopicPartition, int]:
        """The ends of the last refresh, for a checkpoint to store (once per refresh)."""
        highs, self.highs = self.highs, {}
        return highs

    def refresh(self, metrics: Metrics, health: Health | None) -> None:
        """Log ends of the held partitions every LAG_REFRESH_S: the lag metric, and for
        readiness, proof that the broker answers."""
        if time.monotonic() - self.read_at < LAG_REFRESH_S:
            return
        self.read_at = time.monotonic()
        try:  # a broker round trip per partition: lag is refreshed, not read per checkpoint
            if self.held:
                self.highs = self.source.end_offsets(self.held.tps)
                self.ends.update(self.highs)
            else:
                self.source.partitions_for(self.predictions_topic)
        except Exception as exc:  # lag is informative only; never block a checkpoint on it
            log.warning("could not read end offsets error=%r", exc)
            return
        if health is not None:
            health.broker_ok()
        for tp, high in self.highs.items():
            committed = self.held.committed.get(tp)
            if committed is not None:
                metrics.lag.labels(tp[0], str(tp[1])).set(max(high - committed, 0))

    def behind(self, buffered: int, max_events: int) -> bool:
        """A backlog worth checkpointing without waiting for ``checkpoint.interval_s``: the
        buffer holds a fifth of ``max_events`` and at least ``max_events`` more records are
        known to be left to read (by the last ends read, which only understates it). Behind, a
        free checkpoint worker waiting for the interval is time lost: at the start of a
        backlog the first checkpoint waited ~1.7 s for its buffer."""
        if buffered < max_events // 5:
            return False
        left = sum(max(end - self.held.read.get(tp, 0), 0) for tp, end in self.ends.items()
                   if tp in self.held)
        return left >= max_events

    def caught_up(self) -> bool:
        """Every held partition committed up to its log end (``--exit-when-idle``)."""
        try:
            ends = self.source.end_offsets(self.held.tps)
        except Exception:  # noqa: BLE001 - not known to be caught up: keep consuming
            return False
        return all(self.held.committed.get(tp, 0) >= end for tp, end in ends.items())

    def read(self) -> dict[TopicPartition, int]:
        """Every held partition's log end, in one request, for a caller with several questions
        (a flush asks :meth:`read_to_end` and :meth:`idle`): caught up, each request waits
        behind the consumer's fetch long-poll (``fetch.wait.max.ms``, ~0.1 s), and a flush
        asked three of them in a row. Empty when the broker does not answer."""
        try:
            ends = self.source.end_offsets(self.held.tps)
        except Exception:  # noqa: BLE001 - unknown: neither read to the end nor idle
            return {}
        self.ends.update(ends)
        return ends

    def read_to_end(self, ends: dict[TopicPartition, int] | None = None) -> bool:
        """Every held partition read up to its log end (a flush then has every label there
        is: label decisions settle, checkpoint step 6); by ``ends`` (:meth:`read`) if given."""
        ends = self.read() if ends is None else ends
        return bool(ends) and all(self.held.read.get(tp, 0) >= end for tp, end in ends.items())

    def idle(self, ends: dict[TopicPartition, int] | None = None) -> frozenset[TopicPartition]:
        """Held partitions read up to their log end (checked against the broker for those the
        last known ends suggest, or by ``ends``, :meth:`read`): their event time holds no
        watermark back (step 6 of the checkpoint: a labels partition with nothing left to read
        does not keep label-based windows from settling; one with records not yet read does,
        even before its first)."""
        if ends is not None:
            return frozenset(tp for tp, end in ends.items() if self.held.read.get(tp, 0) >= end)
        maybe = [tp for tp in self.held.tps if self.held.read.get(tp, 0) >= self.ends.get(tp, 0)
                 or tp not in self.ends]
        if not maybe:
            return frozenset()
        try:
            ends = self.source.end_offsets(maybe)
        except Exception:  # noqa: BLE001 - not known to be idle: it holds the watermark back
            return frozenset()
        self.ends.update(ends)
        return frozenset(tp for tp, end in ends.items() if self.held.read.get(tp, 0) >= end)
