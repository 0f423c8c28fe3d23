"""kafka-python: pure Python, the portable path."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import monitor.core.kafka.base as kb

log = logging.getLogger(__name__)


class KafkaPythonSource(kb.SourceBase):
    """:class:`Source` on kafka-python (``group_id=None``: no group, no commits)."""

    def __init__(self, bootstrap: str, config: Mapping[str, Any] | None = None,
                 group: kb.Group | None = None) -> None:
        from kafka import KafkaConsumer

        self._bootstrap, self._config = bootstrap, config
        self._listener_error: BaseException | None = None
        membership: dict[str, Any] = {"group_id": None}
        if group is not None:
            membership = {"group_id": group.id,
                          "session_timeout_ms": int(group.session_timeout_s * 1000),
                          "heartbeat_interval_ms": int(group.heartbeat_interval_s * 1000),
                          "max_poll_interval_ms": int(group.max_poll_interval_s * 1000)}
        with _kafka_python_errors(f"connect to {bootstrap}"):
            self._consumer = KafkaConsumer(**{
                "bootstrap_servers": bootstrap, "client_id": "vitmon", **membership,
                "enable_auto_commit": False, "allow_auto_create_topics": False,
                "auto_offset_reset": "earliest", "fetch_max_bytes": kb.FETCH_MAX_BYTES,
                "max_partition_fetch_bytes": kb.PARTITION_FETCH_BYTES,
                "receive_message_max_bytes": kb.FETCH_MAX_BYTES + (1 << 20),
                "fetch_max_wait_ms": 100, "check_crcs": False, "max_poll_records": 100_000,
                "request_timeout_ms": int(kb.REQUEST_TIMEOUT_S * 3000), **(config or {}),
            })

    def assign(self, start: dict[kb.TopicPartitionKey, int]) -> None:
        from kafka import TopicPartition

        tps = {tp: TopicPartition(*tp) for tp in start}
        self._consumer.assign(list(tps.values()))
        for tp, offset in start.items():
            self._consumer.seek(tps[tp], offset)
        log.info("assigned client=kafka-python partitions=%s", kb.describe(start))

    def subscribe(self, topics: list[str], listener: kb.Rebalance) -> None:
        from kafka import ConsumerRebalanceListener, TopicPartition

        consumer = self._consumer
        source = self

        def keys(partitions: Any) -> list[kb.TopicPartitionKey]:
            return sorted((p.topic, p.partition) for p in partitions)

        # kafka-python logs what a listener raises and either swallows it (2.x: partitions
        # assigned but never claimed, their records skipped without a word) or raises a generic
        # KafkaError from poll (3.x: a stop during a claim's retry, CheckpointAbandoned, became a
        # crash): kept here and raised by poll as itself, as confluent-kafka does.
        class Listener(ConsumerRebalanceListener):
            def on_partitions_assigned(self, assigned: Any) -> None:
                with source._listener_errors():
                    for tp, offset in listener.assigned(keys(assigned)).items():
                        consumer.seek(TopicPartition(*tp), offset)
                    consumer.resume(*assigned)  # a new assignment fetches every partition

            def on_partitions_revoked(self, revoked: Any) -> None:
                with source._listener_errors():
                    listener.revoked(keys(revoked))

            def on_partitions_lost(self, lost: Any) -> None:
                with source._listener_errors():
                    listener.lost(keys(lost))

        self._consumer.subscribe(topics=topics, listener=Listener())

    @contextlib.contextmanager
    def _listener_errors(self) -> Iterator[None]:
        try:
            yield
        except BaseException as exc:
            if self._listener_error is None:
                self._listener_error = exc
            raise

    def seek(self, start: dict[kb.TopicPartitionKey, int]) -> None:
        from kafka import TopicPartition

        for tp, offset in start.items():
            self._consumer.seek(TopicPartition(*tp), offset)

    def pause(self, tps: list[kb.TopicPartitionKey]) -> None:
        from kafka import TopicPartition

        held = self._consumer.assignment()  # pausing a partition not assigned is an error
        self._consumer.pause(*(t for t in map(lambda tp: TopicPartition(*tp), tps) if t in held))

    def resume(self, tps: list[kb.TopicPartitionKey]) -> None:
        from kafka import TopicPartition

        held = self._consumer.assignment()
        self._consumer.resume(*(t for t in map(lambda tp: TopicPartition(*tp), tps) if t in held))

    def commit(self, offsets: dict[kb.TopicPartitionKey, int]) -> None:
        from kafka import OffsetAndMetadata, TopicPartition
        from kafka.errors import KafkaError

        try:
            self._consumer.commit_async(
                {TopicPartition(*tp): OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()},
                callback=_on_commit)
        except KafkaError as exc:  # e.g. no longer a member: lag tools see it next time
            log.debug("group commit failed error=%s", exc)

    def poll(self, max_records: int = 10000, timeout_s: float = 0.5) -> list[kb.Record]:
        try:
            batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000),
                                          max_records=max_records)
        except Exception:  # kafka-python >= 3 wraps it: "User rebalance callback throws an error"
            if self._listener_error is None:
                raise
        if self._listener_error is not None:  # as confluent-kafka does: the error itself
            exc, self._listener_error = self._listener_error, None
            raise exc
        out: list[kb.Record] = []
        for messages in batches.values():
            out.extend(
                kb.Record(m.topic, m.partition, m.offset, m.key, m.value,
                       m.timestamp if m.timestamp is not None else -1,
                       tuple(m.headers) if m.headers else ())
                for m in messages)
        return out

    def _fetched_high(self, tp: kb.TopicPartitionKey) -> int | None:
        from kafka import TopicPartition

        ktp = TopicPartition(*tp)
        if ktp not in self._consumer.assignment():
            return None
        high = self._consumer.highwater(ktp)
        return int(high) if high is not None else None

    def _listed_ends(self, tps: list[kb.TopicPartitionKey]) -> dict[kb.TopicPartitionKey, int]:
        from kafka import TopicPartition
        from kafka.errors import KafkaError

        try:
            ends = self._consumer.end_offsets([TopicPartition(*tp) for tp in tps])
        except KafkaError as exc:
            raise kb.KafkaIOError(f"end offsets: {exc}") from None
        return {(tp.topic, tp.partition): int(off) for tp, off in ends.items()}

    def partitions_for(self, topic: str) -> list[int]:
        # partitions_for_topic() alone may answer from a stale cache; topics() always fetches
        # fresh metadata (all topics, which never auto-creates one), then the cache is current
        self._consumer.topics()
        return sorted(self._consumer.partitions_for_topic(topic) or [])

    def close(self) -> None:
        self._consumer.close(autocommit=False)


def _on_commit(_offsets: Any, response: Any) -> None:
    if isinstance(response, Exception):
        log.debug("group commit failed error=%s", response)


class KafkaPythonSink:
    """:class:`Sink` on kafka-python; delivery failures are collected and raised by flush."""

    def __init__(self, bootstrap: str, config: Mapping[str, Any] | None = None) -> None:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        self._kafka_error = KafkaError
        self._errors = kb.DeliveryErrors(kb.KAFKA_PYTHON)
        # 1 MiB batches: measured 7x faster than 16-256 KiB ones against Tansu
        with _kafka_python_errors(f"connect to {bootstrap}"):
            self._producer = KafkaProducer(**{
                "bootstrap_servers": bootstrap, "client_id": "vitmon", "acks": "all",
                "max_request_size": kb.CLIENT_MAX_MESSAGE_BYTES, "batch_size": 1 << 20,
                "linger_ms": 10,
                "compression_type": None, "request_timeout_ms": int(kb.REQUEST_TIMEOUT_S * 3000),
                **(config or {}),
            })

    def produce(self, topic: str, value: bytes, key: bytes | None = None,
                headers: kb.Headers | None = None) -> None:
        try:
            future = self._producer.send(topic, value=value, key=key, headers=headers or [])
        except self._kafka_error as exc:  # too large, or no metadata in time
            raise kb.KafkaIOError(f"produce to {topic}: {exc}") from None
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
        self._producer.close(timeout=kb.REQUEST_TIMEOUT_S)


def create_topics(bootstrap: str, topics: dict[str, int],
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
                                    timeout_ms=int(kb.REQUEST_TIMEOUT_S * 1000))
                log.info("topic created topic=%s partitions=%d", name, parts)
            except TopicAlreadyExistsError:
                pass
            except KafkaError as exc:
                raise kb.KafkaIOError(f"create topic {name}: {exc}") from None
    finally:
        admin.close()


@contextlib.contextmanager
def _kafka_python_errors(doing: str) -> Iterator[None]:
    """kafka-python's exceptions -> :class:`kb.KafkaIOError` (callers handle one error type)."""
    from kafka.errors import KafkaError

    try:
        yield
    except KafkaError as exc:
        raise kb.KafkaIOError(f"kafka-python cannot {doing}: {exc}") from None


def _admin_keys(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The connection settings of ``config`` that KafkaAdminClient accepts (it rejects others)."""
    from kafka import KafkaAdminClient

    return {k: v for k, v in (config or {}).items() if k in KafkaAdminClient.DEFAULT_CONFIG}
