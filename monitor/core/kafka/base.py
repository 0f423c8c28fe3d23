"""What both Kafka clients share: limits, the :class:`Source`/:class:`Sink` interfaces, the
error type, exact end offsets (:class:`SourceBase`) and delivery-error collection."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from monitor.core.ingest.records import Record
from monitor.errors import VitmonError

log = logging.getLogger(__name__)

KAFKA_PYTHON = "kafka-python"
CONFLUENT = "confluent-kafka"
CLIENTS = (KAFKA_PYTHON, CONFLUENT)

#: Largest message produced or consumed: well above the monitor's 1 MiB "oversized" limit
#: (``monitor.core.ingest.events.MAX_MESSAGE_BYTES``), which it can only enforce on messages it can read.
CLIENT_MAX_MESSAGE_BYTES = 8 << 20
FETCH_MAX_BYTES = 64 << 20  # one fetch response, all partitions
PARTITION_FETCH_BYTES = 8 << 20  # per partition per fetch; larger = fewer round trips
REQUEST_TIMEOUT_S = 10.0

Headers = list[tuple[str, bytes]]
TopicPartitionKey = tuple[str, int]


class KafkaIOError(VitmonError):
    """The broker refused or failed an operation (delivery, metadata, topic creation)."""


@dataclass(frozen=True)
class Group:
    """Consumer-group membership: the group id and its timeouts (``kafka.*`` settings)."""

    id: str
    session_timeout_s: float = 45.0
    heartbeat_interval_s: float = 3.0
    max_poll_interval_s: float = 300.0


class Rebalance(Protocol):
    """What a group member does when the coordinator moves partitions. Called from inside
    :meth:`Source.poll`, on the polling thread (Kafka's pattern for offsets kept outside Kafka:
    the positions come from the caller's store, never from the group's committed offsets)."""

    def assigned(self, tps: list[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        """Partitions given to this member -> the next offset to read in each."""

    def revoked(self, tps: list[TopicPartitionKey]) -> None:
        """Partitions taken away in an orderly rebalance: this member may still commit."""

    def lost(self, tps: list[TopicPartitionKey]) -> None:
        """Partitions this member lost (session expired): another may own them already."""


class Source(Protocol):
    """Reads partitions: explicitly assigned ones, or those the consumer group gives it.
    Offsets are the caller's business (:class:`Rebalance` supplies them under a group)."""

    def assign(self, start: dict[TopicPartitionKey, int]) -> None:
        """Replace the assignment; values are the next offset to read (0 = beginning)."""

    def subscribe(self, topics: list[str], listener: Rebalance) -> None:
        """Join the source's consumer group for ``topics`` (it must have been made with one)."""

    def seek(self, start: dict[TopicPartitionKey, int]) -> None:
        """Read these assigned partitions again from the given offsets."""

    def pause(self, tps: list[TopicPartitionKey]) -> None:
        """Stop fetching these partitions (until :meth:`resume` or the next assignment)."""

    def resume(self, tps: list[TopicPartitionKey]) -> None:
        """Fetch paused partitions again."""

    def commit(self, offsets: dict[TopicPartitionKey, int]) -> None:
        """Best effort, asynchronous: record next offsets in the Kafka group (for lag tools)."""

    def poll(self, max_records: int = 10000, timeout_s: float = 0.5) -> list[Record]:
        """Up to ``max_records`` records, in offset order within each partition."""

    def end_offsets(self, tps: list[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        """High watermarks (offset of the next message to be written), for lag."""

    def partitions_for(self, topic: str) -> list[int]:
        """Partition ids of ``topic`` from cluster metadata; [] when the topic does not exist."""

    def close(self) -> None: ...


class Sink(Protocol):
    """Produces messages; :meth:`flush` raises :class:`KafkaIOError` if any delivery failed."""

    def produce(self, topic: str, value: bytes, key: bytes | None = None,
                headers: Headers | None = None) -> None: ...

    def flush(self, timeout_s: float = 10) -> None: ...

    def close(self) -> None: ...


class SourceBase:
    """Exact end offsets for both clients, despite brokers that under-report them.

    Tansu (the embedded broker) answers ListOffsets(latest) with the base offset of the last
    record *batch* plus one, not the offset after the last record; its Fetch responses carry
    the right high watermark. So: ListOffsets gives a lower bound (exact on Apache Kafka), the
    high watermark of the latest fetch of an assigned partition raises it, and partitions with
    neither are probed with one fetch of their last batch by a short-lived second consumer.
    """

    _bootstrap: str
    _config: Mapping[str, Any] | None

    def _listed_ends(self, tps: list[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        raise NotImplementedError

    def _fetched_high(self, tp: TopicPartitionKey) -> int | None:
        """High watermark from this consumer's latest fetch of ``tp``, if it has fetched it."""
        raise NotImplementedError

    def poll(self, max_records: int = 10000, timeout_s: float = 0.5) -> list[Record]:
        raise NotImplementedError

    def assign(self, start: dict[TopicPartitionKey, int]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def end_offsets(self, tps: list[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        listed = self._listed_ends(tps)
        out: dict[TopicPartitionKey, int] = {}
        unknown: dict[TopicPartitionKey, int] = {}
        for tp in tps:
            fetched = self._fetched_high(tp)
            if fetched is not None:
                out[tp] = max(listed[tp], fetched)
            elif listed[tp] == 0:
                out[tp] = 0  # empty partition: nothing to under-report
            else:
                unknown[tp] = listed[tp]
        if unknown:
            out.update(self._probe_ends(unknown))
        return out

    def _probe_ends(self, listed: dict[TopicPartitionKey, int]) -> dict[TopicPartitionKey, int]:
        probe = type(self)(self._bootstrap, self._config)  # type: ignore[call-arg]
        try:
            probe.assign({tp: end - 1 for tp, end in listed.items()})
            deadline = time.monotonic() + REQUEST_TIMEOUT_S
            out: dict[TopicPartitionKey, int] = {}
            while len(out) < len(listed) and time.monotonic() < deadline:
                probe.poll(100_000, 0.1)
                for tp, end in listed.items():
                    fetched = probe._fetched_high(tp)
                    if fetched is not None:
                        out[tp] = max(end, fetched)
        finally:
            probe.close()
        if len(out) < len(listed):
            missing = sorted(set(listed) - set(out))
            raise KafkaIOError(f"no high watermark within {REQUEST_TIMEOUT_S}s for {missing}")
        return out


class DeliveryErrors:
    """Delivery failures reported by a producer's background thread, raised by ``flush``.

    A caller that flushes before committing offsets (the DLQ path) therefore never commits
    past a message that did not reach Kafka. Only a count and the first error are kept.
    """

    def __init__(self, client: str) -> None:
        self.client, self.count, self.first = client, 0, ""

    def add(self, error: str) -> None:
        if not self.count:
            self.first = error
            log.error("delivery failed client=%s error=%s", self.client, error)
        self.count += 1

    def raise_if_any(self, remaining: int, timeout_s: float) -> None:
        """Raise for failures since the last call (then forget them), or for a timeout."""
        count, first, self.count, self.first = self.count, self.first, 0, ""
        if count:
            raise KafkaIOError(f"{count} message(s) not delivered, first: {first}")
        if remaining:
            pending = "some" if remaining < 0 else str(remaining)
            raise KafkaIOError(f"{pending} message(s) still undelivered after {timeout_s}s")


def describe(start: dict[TopicPartitionKey, int]) -> str:
    """``topic[p]@offset`` list for logs."""
    return ",".join(f"{t}[{p}]@{o}" for (t, p), o in sorted(start.items()))
