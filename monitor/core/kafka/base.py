"""One small interface over both Kafka clients: ``kafka-python`` and ``confluent-kafka``.

The monitor owns its offsets: they are committed to PostgreSQL in the same transaction as the
results they produced (exactly-once effect). So there are no consumer groups here: a
:class:`Source` is assigned explicit partitions at explicit offsets, never commits to Kafka,
and never auto-creates topics. Brokers that auto-create topics on first use (Tansu does, with
its own partition count) are handled by creating topics explicitly with :func:`create_topics`
and always reading partition lists from cluster metadata.

Size limits: the monitor rejects messages over 1 MiB as "oversized", so it must be able to
*read* them first. Producers and consumers here accept up to :data:`CLIENT_MAX_MESSAGE_BYTES`.

The client libraries are imported lazily, so using one does not pay for importing the other.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from monitor.errors import ConfigError, VitmonError

log = logging.getLogger(__name__)

KAFKA_PYTHON = "kafka-python"
CONFLUENT = "confluent-kafka"
CLIENTS = (KAFKA_PYTHON, CONFLUENT)

#: Largest message produced or consumed: well above the monitor's 1 MiB "oversized" limit
#: (``monitor.events.MAX_MESSAGE_BYTES``), which it can only enforce on messages it can read.
CLIENT_MAX_MESSAGE_BYTES = 8 << 20
FETCH_MAX_BYTES = 64 << 20  # one fetch response, all partitions
PARTITION_FETCH_BYTES = 8 << 20  # per partition per fetch; larger = fewer round trips
REQUEST_TIMEOUT_S = 10.0

Headers = list[tuple[str, bytes]]
TopicPartitionKey = tuple[str, int]


class KafkaIOError(VitmonError):
    """The broker refused or failed an operation (delivery, metadata, topic creation)."""


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed message, independent of the client library.

    ``timestamp_ms`` is -1 when the broker gives none. ``headers`` is empty when the message
    has none (the DLQ's reject reason travels in a header).
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    headers: tuple[tuple[str, bytes], ...] = ()


class Source(Protocol):
    """Reads explicitly assigned partitions; offsets are the caller's business."""

    def assign(self, start: dict[TopicPartitionKey, int]) -> None:
        """Replace the assignment; values are the next offset to read (0 = beginning)."""

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


def _check_client(client: str) -> None:
    if client not in CLIENTS:
        raise ConfigError("kafka.client", f"must be one of {', '.join(map(repr, CLIENTS))}; "
                          f"got {client!r}")


def make_source(client: str, bootstrap: str, config: Mapping[str, Any] | None = None) -> Source:
    """A :class:`Source` on the named client library (``kafka.client`` setting).

    ``config`` is merged over vitmon's defaults, in the client library's own spelling
    (``"security.protocol"`` for confluent-kafka, ``security_protocol`` for kafka-python): TLS
    and SASL settings of a production cluster go there.
    """
    _check_client(client)
    if client == CONFLUENT:
        return ConfluentSource(bootstrap, config)
    return KafkaPythonSource(bootstrap, config)


def make_sink(client: str, bootstrap: str, config: Mapping[str, Any] | None = None) -> Sink:
    """A :class:`Sink` on the named client library; ``config`` as for :func:`make_source`."""
    _check_client(client)
    if client == CONFLUENT:
        return ConfluentSink(bootstrap, config)
    return KafkaPythonSink(bootstrap, config)


def create_topics(client: str, bootstrap: str, topics: dict[str, int],
                  config: Mapping[str, Any] | None = None) -> None:
    """Create topics (name -> partitions); an existing topic is left as it is.

    A topic that exists with a different partition count is logged, not altered: the stored
    offsets and partition-keyed state depend on the partitioning it already has.
    """
    _check_client(client)
    if not topics:
        return
    if client == CONFLUENT:
        _confluent_create_topics(bootstrap, topics, config)
    else:
        _kafka_python_create_topics(bootstrap, topics, config)
    source = make_source(client, bootstrap, config)
    try:
        for name, wanted in topics.items():
            actual = _wait_partitions(source, name)
            if len(actual) != wanted:
                log.warning("topic exists with other partition count topic=%s wanted=%d actual=%d",
                            name, wanted, len(actual))
    finally:
        source.close()


def partitions_for(client: str, bootstrap: str, topic: str,
                   config: Mapping[str, Any] | None = None) -> list[int]:
    """Partition ids of ``topic`` from cluster metadata ([] when it does not exist)."""
    source = make_source(client, bootstrap, config)
    try:
        return source.partitions_for(topic)
    finally:
        source.close()


def _wait_partitions(source: Source, topic: str, timeout_s: float = REQUEST_TIMEOUT_S) -> list[int]:
    """Partitions of a just-created topic, waiting for metadata to catch up."""
    deadline = time.monotonic() + timeout_s
    while True:
        parts = source.partitions_for(topic)
        if parts or time.monotonic() > deadline:
            if not parts:
                raise KafkaIOError(f"topic {topic} missing from metadata after creation")
            return parts
        time.sleep(0.1)


class _SourceBase:
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


# --------------------------------------------------------------------------------------------
# confluent-kafka (librdkafka): the fast path
# --------------------------------------------------------------------------------------------

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
        "fetch.max.bytes": FETCH_MAX_BYTES,
        "max.partition.fetch.bytes": PARTITION_FETCH_BYTES,
        "receive.message.max.bytes": FETCH_MAX_BYTES + (1 << 20),
        "queued.max.messages.kbytes": 128 << 10,  # prefetch bound (KiB): 128 MiB in all
        "fetch.wait.max.ms": 100,
        "check.crcs": False,
    }


def _confluent_producer_conf(bootstrap: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "message.max.bytes": CLIENT_MAX_MESSAGE_BYTES,
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


def _confluent_tp(tp: TopicPartitionKey, offset: int | None = None) -> Any:
    from confluent_kafka import TopicPartition

    return TopicPartition(tp[0], tp[1]) if offset is None else TopicPartition(tp[0], tp[1], offset)


class ConfluentSource(_SourceBase):
    """:class:`Source` on librdkafka; ``consume(n, timeout)`` returns whole batches."""

    def __init__(self, bootstrap: str, config: Mapping[str, Any] | None = None) -> None:
        from confluent_kafka import Consumer

        self._bootstrap, self._config = bootstrap, config
        conf = {**_confluent_consumer_conf(bootstrap), **_confluent_common(bootstrap, config)}
        self._consumer = Consumer(conf)
        self._assigned: frozenset[TopicPartitionKey] = frozenset()
        self._error_logged_at = 0.0

    def assign(self, start: dict[TopicPartitionKey, int]) -> None:
        self._consumer.assign([_confluent_tp(tp, offset) for tp, offset in start.items()])
        self._assigned = frozenset(start)
        log.info("assigned client=confluent-kafka partitions=%s", _describe(start))

    def poll(self, max_records: int = 10000, timeout_s: float = 0.5) -> list[Record]:
        # librdkafka caps one consume() call at 1,000,000 messages
        messages = self._consumer.consume(num_messages=min(max_records, 1_000_000),
                                          timeout=timeout_s)
        out: list[Record] = []
        append = out.append
        for m in messages:
            err = m.error()
            if err is not None:
                self._on_error(err)
                continue
            ts_type, ts = m.timestamp()
            headers = m.headers()
            append(Record(m.topic(), m.partition(), m.offset(), m.key(), m.value(),
                          ts if ts_type else -1, tuple(headers) if headers else ()))
        return out

    def _on_error(self, err: Any) -> None:
        """Fatal errors raise; transient ones (broker down: it retries) are logged every 10 s."""
        if err.fatal():
            raise KafkaIOError(f"consumer fatal error: {err.str()}")
        now = time.monotonic()
        if now - self._error_logged_at > 10:
            self._error_logged_at = now
            log.warning("consumer error client=confluent-kafka code=%s error=%s", err.name(),
                        err.str())

    def _fetched_high(self, tp: TopicPartitionKey) -> int | None:
        from confluent_kafka import KafkaException

        if tp not in self._assigned:  # librdkafka keeps stale values for dropped partitions
            return None
        try:
            _, high = self._consumer.get_watermark_offsets(_confluent_tp(tp), cached=True)
        except KafkaException:
            return None
        return int(high) if high >= 0 else None  # -1001 (OFFSET_INVALID) until fetched

    def _listed_ends(self, tps: list[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        from confluent_kafka import KafkaException

        out: dict[TopicPartitionKey, int] = {}
        for tp in tps:
            try:
                _, high = self._consumer.get_watermark_offsets(
                    _confluent_tp(tp), timeout=REQUEST_TIMEOUT_S, cached=False)
            except KafkaException as exc:
                raise KafkaIOError(f"end offset of {tp[0]}[{tp[1]}]: {exc.args[0].str()}") from None
            out[tp] = int(high)
        return out

    def partitions_for(self, topic: str) -> list[int]:
        from confluent_kafka import KafkaError, KafkaException

        try:
            meta = self._consumer.list_topics(topic, timeout=REQUEST_TIMEOUT_S)
        except KafkaException as exc:
            raise KafkaIOError(f"metadata for {topic}: {exc.args[0].str()}") from None
        tmeta = meta.topics.get(topic)
        if tmeta is None or (tmeta.error is not None
                             and tmeta.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
            return []
        if tmeta.error is not None:
            raise KafkaIOError(f"metadata for {topic}: {tmeta.error.str()}")
        return sorted(tmeta.partitions)

    def close(self) -> None:
        self._consumer.close()


class ConfluentSink:
    """:class:`Sink` on librdkafka: batches in the background, delivery reports checked on flush."""

    _POLL_EVERY = 1000  # serve delivery callbacks regularly so the report queue stays small

    def __init__(self, bootstrap: str, config: Mapping[str, Any] | None = None) -> None:
        from confluent_kafka import KafkaException, Producer

        self._kafka_exception = KafkaException  # kept: an import per produce() costs ~2 us
        self._errors = _DeliveryErrors(CONFLUENT)
        conf = {**_confluent_producer_conf(bootstrap), **_confluent_common(bootstrap, config),
                "on_delivery": self._on_delivery}
        self._producer = Producer(conf)
        self._since_poll = 0

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._errors.add(f"{msg.topic()}: {err.str()}")

    def produce(self, topic: str, value: bytes, key: bytes | None = None,
                headers: Headers | None = None) -> None:
        while True:
            try:
                self._producer.produce(topic, value, key, headers=headers)
                break
            except BufferError:  # local queue full: wait for deliveries, then retry
                self._producer.poll(0.05)
            except self._kafka_exception as exc:  # e.g. too large
                raise KafkaIOError(f"produce to {topic}: {exc.args[0].str()}") from None
        self._since_poll += 1
        if self._since_poll >= self._POLL_EVERY:
            self._since_poll = 0
            self._producer.poll(0)

    def flush(self, timeout_s: float = 10) -> None:
        remaining = self._producer.flush(timeout_s)
        self._errors.raise_if_any(remaining, timeout_s)

    def close(self) -> None:
        self._producer.flush(REQUEST_TIMEOUT_S)


def _confluent_create_topics(bootstrap: str, topics: dict[str, int],
                             config: Mapping[str, Any] | None) -> None:
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(_confluent_common(bootstrap, config))
    futures = admin.create_topics([NewTopic(name, parts, 1) for name, parts in topics.items()],
                                  operation_timeout=REQUEST_TIMEOUT_S,
                                  request_timeout=REQUEST_TIMEOUT_S)
    for name, future in futures.items():
        try:
            future.result()
            log.info("topic created topic=%s partitions=%d", name, topics[name])
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise KafkaIOError(f"create topic {name}: {exc.args[0].str()}") from None


# --------------------------------------------------------------------------------------------
# kafka-python: pure Python, the portable path
# --------------------------------------------------------------------------------------------


class KafkaPythonSource(_SourceBase):
    """:class:`Source` on kafka-python (``group_id=None``: no group, no commits)."""

    def __init__(self, bootstrap: str, config: Mapping[str, Any] | None = None) -> None:
        from kafka import KafkaConsumer

        self._bootstrap, self._config = bootstrap, config
        with _kafka_python_errors(f"connect to {bootstrap}"):
            self._consumer = KafkaConsumer(**{
                "bootstrap_servers": bootstrap, "client_id": "vitmon", "group_id": None,
                "enable_auto_commit": False, "allow_auto_create_topics": False,
                "auto_offset_reset": "earliest", "fetch_max_bytes": FETCH_MAX_BYTES,
                "max_partition_fetch_bytes": PARTITION_FETCH_BYTES,
                "receive_message_max_bytes": FETCH_MAX_BYTES + (1 << 20),
                "fetch_max_wait_ms": 100, "check_crcs": False, "max_poll_records": 100_000,
                "request_timeout_ms": int(REQUEST_TIMEOUT_S * 3000), **(config or {}),
            })

    def assign(self, start: dict[TopicPartitionKey, int]) -> None:
        from kafka import TopicPartition

        tps = {tp: TopicPartition(*tp) for tp in start}
        self._consumer.assign(list(tps.values()))
        for tp, offset in start.items():
            self._consumer.seek(tps[tp], offset)
        log.info("assigned client=kafka-python partitions=%s", _describe(start))

    def poll(self, max_records: int = 10000, timeout_s: float = 0.5) -> list[Record]:
        batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        out: list[Record] = []
        for messages in batches.values():
            out.extend(
                Record(m.topic, m.partition, m.offset, m.key, m.value,
                       m.timestamp if m.timestamp is not None else -1,
                       tuple(m.headers) if m.headers else ())
                for m in messages)
        return out

    def _fetched_high(self, tp: TopicPartitionKey) -> int | None:
        from kafka import TopicPartition

        ktp = TopicPartition(*tp)
        if ktp not in self._consumer.assignment():
            return None
        high = self._consumer.highwater(ktp)
        return int(high) if high is not None else None

    def _listed_ends(self, tps: list[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        from kafka import TopicPartition
        from kafka.errors import KafkaError

        try:
            ends = self._consumer.end_offsets([TopicPartition(*tp) for tp in tps])
        except KafkaError as exc:
            raise KafkaIOError(f"end offsets: {exc}") from None
        return {(tp.topic, tp.partition): int(off) for tp, off in ends.items()}

    def partitions_for(self, topic: str) -> list[int]:
        # partitions_for_topic() alone may answer from a stale cache; topics() always fetches
        # fresh metadata (all topics, which never auto-creates one), then the cache is current
        self._consumer.topics()
        return sorted(self._consumer.partitions_for_topic(topic) or [])

    def close(self) -> None:
        self._consumer.close(autocommit=False)


class KafkaPythonSink:
    """:class:`Sink` on kafka-python; delivery failures are collected and raised by flush."""

    def __init__(self, bootstrap: str, config: Mapping[str, Any] | None = None) -> None:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        self._kafka_error = KafkaError
        self._errors = _DeliveryErrors(KAFKA_PYTHON)
        # 1 MiB batches: measured 7x faster than 16-256 KiB ones against Tansu
        with _kafka_python_errors(f"connect to {bootstrap}"):
            self._producer = KafkaProducer(**{
                "bootstrap_servers": bootstrap, "client_id": "vitmon", "acks": "all",
                "max_request_size": CLIENT_MAX_MESSAGE_BYTES, "batch_size": 1 << 20,
                "linger_ms": 10,
                "compression_type": None, "request_timeout_ms": int(REQUEST_TIMEOUT_S * 3000),
                **(config or {}),
            })

    def produce(self, topic: str, value: bytes, key: bytes | None = None,
                headers: Headers | None = None) -> None:
        try:
            future = self._producer.send(topic, value=value, key=key, headers=headers or [])
        except self._kafka_error as exc:  # too large, or no metadata in time
            raise KafkaIOError(f"produce to {topic}: {exc}") from None
        future.add_errback(lambda exc: self._errors.add(f"{topic}: {exc}"))

    def flush(self, timeout_s: float = 10) -> None:
        from kafka.errors import KafkaTimeoutError

        remaining = 0
        try:
            self._producer.flush(timeout=timeout_s)
        except KafkaTimeoutError:
            remaining = -1  # count unknown
        self._errors.raise_if_any(remaining, timeout_s)

    def close(self) -> None:
        self._producer.close(timeout=REQUEST_TIMEOUT_S)


def _kafka_python_create_topics(bootstrap: str, topics: dict[str, int],
                                config: Mapping[str, Any] | None) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    with _kafka_python_errors(f"connect to {bootstrap}"):
        admin = KafkaAdminClient(**{"bootstrap_servers": bootstrap, "client_id": "vitmon",
                                    **_admin_keys(config)})
    try:
        for name, parts in topics.items():  # one by one: an existing topic fails the request
            try:
                admin.create_topics([NewTopic(name, parts, 1)],
                                    timeout_ms=int(REQUEST_TIMEOUT_S * 1000))
                log.info("topic created topic=%s partitions=%d", name, parts)
            except TopicAlreadyExistsError:
                pass
            except KafkaError as exc:
                raise KafkaIOError(f"create topic {name}: {exc}") from None
    finally:
        admin.close()


@contextlib.contextmanager
def _kafka_python_errors(doing: str) -> Iterator[None]:
    """kafka-python's exceptions -> :class:`KafkaIOError` (callers handle one error type)."""
    from kafka.errors import KafkaError

    try:
        yield
    except KafkaError as exc:
        raise KafkaIOError(f"kafka-python cannot {doing}: {exc}") from None


def _admin_keys(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The connection settings of ``config`` that KafkaAdminClient accepts (it rejects others)."""
    from kafka import KafkaAdminClient

    return {k: v for k, v in (config or {}).items() if k in KafkaAdminClient.DEFAULT_CONFIG}


# --------------------------------------------------------------------------------------------


class _DeliveryErrors:
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


def _describe(start: dict[TopicPartitionKey, int]) -> str:
    """``topic[p]@offset`` list for logs."""
    return ",".join(f"{t}[{p}]@{o}" for (t, p), o in sorted(start.items()))
