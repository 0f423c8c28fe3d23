"""confluent-kafka (librdkafka): the fast path."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import monitor.core.kafka.base as kb

log = logging.getLogger(__name__)

#: librdkafka logs go through Python logging (served by poll/consume), not raw to stderr.
_RDKAFKA_LOG = logging.getLogger(__name__ + ".librdkafka")


def _confluent_common(bootstrap: str, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"bootstrap.servers": bootstrap, "client.id": "vitmon", "logger": _RDKAFKA_LOG,
            "socket.keepalive.enable": True, **(config or {})}


def _confluent_consumer_conf(bootstrap: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        # librdkafka insists on a group.id, but with assign() and no commits no group is joined
        "group.id": "vitmon-assign-only",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": False,
        "allow.auto.create.topics": False,
        "auto.offset.reset": "earliest",  # an offset below retention resumes at the oldest kept
        "fetch.max.bytes": kb.FETCH_MAX_BYTES,
        "max.partition.fetch.bytes": kb.PARTITION_FETCH_BYTES,
        "receive.message.max.bytes": kb.FETCH_MAX_BYTES + (1 << 20),
        "queued.max.messages.kbytes": 128 << 10,  # prefetch bound (KiB): 128 MiB in all
        "fetch.wait.max.ms": 100,
        # Once the prefetch queue is full, librdkafka postpones the next fetch by this much
        # (default 1,000 ms): a backlog read faster than that stalled ~0.6 s each time the queue
        # ran dry (50,000 2.5 kB records: 0.6 s without records at 1,000, none at 5; /tmp probe)
        "fetch.queue.backoff.ms": 5,
        "check.crcs": False,
    }


def _confluent_producer_conf(bootstrap: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "message.max.bytes": kb.CLIENT_MAX_MESSAGE_BYTES,
        "linger.ms": 10,
        "batch.size": 4 << 20,
        "batch.num.messages": 100_000,
        "queue.buffering.max.kbytes": 128 << 10,  # local send buffer bound (KiB): 128 MiB
        "queue.buffering.max.messages": 500_000,
        # "none" measured fastest on localhost; kafka-python readers also need no lz4 module
        "compression.type": "none",
        # same key -> same partition as kafka-python and the Java client
        "partitioner": "murmur2_random",
        "acks": "all",
    }


def _confluent_tp(tp: kb.TopicPartitionKey, offset: int | None = None) -> Any:
    from confluent_kafka import TopicPartition

    return TopicPartition(tp[0], tp[1]) if offset is None else TopicPartition(tp[0], tp[1], offset)


def _on_commit(err: Any, _partitions: Any) -> None:
    if err is not None:
        log.debug("group commit failed error=%s", err.str())


class ConfluentSource(kb.SourceBase):
    """:class:`Source` on librdkafka; ``consume(n, timeout)`` returns whole batches."""

    def __init__(self, bootstrap: str, config: Mapping[str, Any] | None = None,
                 group: kb.Group | None = None) -> None:
        from confluent_kafka import Consumer

        self._bootstrap, self._config = bootstrap, config
        conf = {**_confluent_consumer_conf(bootstrap), **_confluent_common(bootstrap, config)}
        if group is not None:
            conf.update({"group.id": group.id,
                         "session.timeout.ms": int(group.session_timeout_s * 1000),
                         "heartbeat.interval.ms": int(group.heartbeat_interval_s * 1000),
                         "max.poll.interval.ms": int(group.max_poll_interval_s * 1000),
                         "on_commit": _on_commit})
        self._consumer = Consumer(conf)
        self._assigned: frozenset[kb.TopicPartitionKey] = frozenset()
        self._error_logged_at = 0.0

    def assign(self, start: dict[kb.TopicPartitionKey, int]) -> None:
        self._consumer.assign([_confluent_tp(tp, offset) for tp, offset in start.items()])
        self._assigned = frozenset(start)
        log.info("assigned client=confluent-kafka partitions=%s", kb.describe(start))

    def subscribe(self, topics: list[str], listener: kb.Rebalance) -> None:
        def keys(partitions: list[Any]) -> list[kb.TopicPartitionKey]:
            return [(p.topic, p.partition) for p in partitions]

        def on_assign(consumer: Any, partitions: list[Any]) -> None:
            start = listener.assigned(keys(partitions))
            tps = [_confluent_tp(tp, offset) for tp, offset in start.items()]
            consumer.assign(tps)
            consumer.resume(tps)  # librdkafka keeps a partition's pause across assignments
            self._assigned = frozenset(start)

        def on_revoke(_consumer: Any, partitions: list[Any]) -> None:
            self._assigned = frozenset()  # the library unassigns after this returns
            listener.revoked(keys(partitions))

        def on_lost(_consumer: Any, partitions: list[Any]) -> None:
            self._assigned = frozenset()
            listener.lost(keys(partitions))

        self._consumer.subscribe(topics, on_assign=on_assign, on_revoke=on_revoke,
                                 on_lost=on_lost)

    def seek(self, start: dict[kb.TopicPartitionKey, int]) -> None:
        from confluent_kafka import KafkaException

        for tp, offset in start.items():  # partitions being fetched (records were read)
            try:
                self._consumer.seek(_confluent_tp(tp, offset))
            except KafkaException as exc:
                raise kb.KafkaIOError(f"seek {tp[0]}[{tp[1]}] to {offset}: "
                                      f"{exc.args[0].str()}") from None

    def pause(self, tps: list[kb.TopicPartitionKey]) -> None:
        self._consumer.pause([_confluent_tp(tp) for tp in tps])

    def resume(self, tps: list[kb.TopicPartitionKey]) -> None:
        self._consumer.resume([_confluent_tp(tp) for tp in tps])

    def commit(self, offsets: dict[kb.TopicPartitionKey, int]) -> None:
        from confluent_kafka import KafkaException

        try:
            self._consumer.commit(offsets=[_confluent_tp(tp, o) for tp, o in offsets.items()],
                                  asynchronous=True)
        except KafkaException as exc:  # e.g. no longer a member: lag tools see it next time
            log.debug("group commit failed error=%s", exc.args[0].str())

    def poll(self, max_records: int = 10000, timeout_s: float = 0.5) -> list[kb.Record]:
        # librdkafka caps one consume() call at 1,000,000 messages
        messages = self._consumer.consume(num_messages=min(max_records, 1_000_000),
                                          timeout=timeout_s)
        # One comprehension and tuple.__new__ (no Python call per message): the polling
        # thread's cost per message besides consume() fell from ~2.7 to ~0.8 us. librdkafka
        # gives timestamp -1 when there is none (rd_kafka_message_timestamp), as Record wants.
        new, record = tuple.__new__, kb.Record
        out = [new(record, (m.topic(), m.partition(), m.offset(), m.key(), m.value(),
                            m.timestamp()[1], tuple(m.headers() or ())))
               for m in messages if m.error() is None]
        if len(out) < len(messages):
            for m in messages:
                err = m.error()
                if err is not None:
                    self._on_error(err)
        return out

    def _on_error(self, err: Any) -> None:
        """Fatal errors raise; transient ones (broker down: it retries) are logged every 10 s."""
        if err.fatal():
            raise kb.KafkaIOError(f"consumer fatal error: {err.str()}")
        now = time.monotonic()
        if now - self._error_logged_at > 10:
            self._error_logged_at = now
            log.warning("consumer error client=confluent-kafka code=%s error=%s", err.name(),
                        err.str())

    def _fetched_high(self, tp: kb.TopicPartitionKey) -> int | None:
        from confluent_kafka import KafkaException

        if tp not in self._assigned:  # librdkafka keeps stale values for dropped partitions
            return None
        try:
            _, high = self._consumer.get_watermark_offsets(_confluent_tp(tp), cached=True)
        except KafkaException:
            return None
        return int(high) if high >= 0 else None  # -1001 (OFFSET_INVALID) until fetched

    def _listed_ends(self, tps: list[kb.TopicPartitionKey]) -> dict[kb.TopicPartitionKey, int]:
        """One ListOffsets(latest) request for all of ``tps`` (timestamp -1 = the log end).

        Not ``get_watermark_offsets(cached=False)`` per partition: each of those is a request
        of its own that waits behind the consumer's fetch long-poll (``fetch.wait.max.ms``),
        about 0.1 s a partition here -- most of an idle consumer loop's time."""
        from confluent_kafka import KafkaException, TopicPartition

        if not tps:
            return {}
        try:
            listed = self._consumer.offsets_for_times(
                [TopicPartition(t, p, -1) for t, p in tps], timeout=kb.REQUEST_TIMEOUT_S)
        except KafkaException as exc:
            raise kb.KafkaIOError(f"end offsets: {exc.args[0].str()}") from None
        out: dict[kb.TopicPartitionKey, int] = {}
        for r in listed:
            if r.error is not None or r.offset < 0:
                raise kb.KafkaIOError(f"end offset of {r.topic}[{r.partition}]: "
                                      f"{r.error.str() if r.error else r.offset}")
            out[(r.topic, r.partition)] = int(r.offset)
        return out

    def partitions_for(self, topic: str) -> list[int]:
        from confluent_kafka import KafkaError, KafkaException

        try:
            meta = self._consumer.list_topics(topic, timeout=kb.REQUEST_TIMEOUT_S)
        except KafkaException as exc:
            raise kb.KafkaIOError(f"metadata for {topic}: {exc.args[0].str()}") from None
        tmeta = meta.topics.get(topic)
        if tmeta is None or (tmeta.error is not None
                             and tmeta.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
            return []
        if tmeta.error is not None:
            raise kb.KafkaIOError(f"metadata for {topic}: {tmeta.error.str()}")
        return sorted(tmeta.partitions)

    def close(self) -> None:
        self._consumer.close()


class ConfluentSink:
    """:class:`Sink` on librdkafka: batches in the background, delivery reports checked on flush."""

    _POLL_EVERY = 1000  # serve delivery callbacks regularly so the report queue stays small

    def __init__(self, bootstrap: str, config: Mapping[str, Any] | None = None) -> None:
        from confluent_kafka import KafkaException, Producer

        self._kafka_exception = KafkaException  # kept: an import per produce() costs ~2 us
        self._errors = kb.DeliveryErrors(kb.CONFLUENT)
        conf = {**_confluent_producer_conf(bootstrap), **_confluent_common(bootstrap, config),
                "on_delivery": self._on_delivery}
        self._producer = Producer(conf)
        self._since_poll = 0

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._errors.add(f"{msg.topic()}: {err.str()}")

    def produce(self, topic: str, value: bytes, key: bytes | None = None,
                headers: kb.Headers | None = None) -> None:
        while True:
            try:
                self._producer.produce(topic, value, key, headers=headers)
                break
            except BufferError:  # local queue full: wait for deliveries, then retry
                self._producer.poll(0.05)
            except self._kafka_exception as exc:  # e.g. too large
                raise kb.KafkaIOError(f"produce to {topic}: {exc.args[0].str()}") from None
        self._since_poll += 1
        if self._since_poll >= self._POLL_EVERY:
            self._since_poll = 0
            self._producer.poll(0)

    def flush(self, timeout_s: float = 10) -> None:
        remaining = self._producer.flush(timeout_s)
        self._errors.raise_if_any(remaining, timeout_s)

    def close(self) -> None:
        self._producer.flush(kb.REQUEST_TIMEOUT_S)


def create_topics(bootstrap: str, topics: dict[str, int],
                             config: Mapping[str, Any] | None) -> None:
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(_confluent_common(bootstrap, config))
    futures = admin.create_topics([NewTopic(name, parts, 1) for name, parts in topics.items()],
                                  operation_timeout=kb.REQUEST_TIMEOUT_S,
                                  request_timeout=kb.REQUEST_TIMEOUT_S)
    for name, future in futures.items():
        try:
            future.result()
            log.info("topic created topic=%s partitions=%d", name, topics[name])
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise kb.KafkaIOError(f"create topic {name}: {exc.args[0].str()}") from None
