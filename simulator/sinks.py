"""Where messages go: a JSONL file, or Kafka through kafka-python or confluent-kafka.

The simulator keeps its own small producers (it must not depend on the monitor's Kafka code).
Topics are created explicitly before producing: the embedded Tansu broker would otherwise
auto-create them with its own partition count.

The file format keeps topic, key and the exact message bytes, one JSON object per line::

    {"topic": "vit.predictions", "key": "2026.11.1", "value": "{\\"schema\\":...}"}

``value_b64`` replaces ``value`` for the rare malformed message that is not valid UTF-8, so
:func:`read_jsonl` gives back byte-identical messages (for replay into Kafka, or tests).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Literal, Protocol

import orjson

from monitor.events import MAX_MESSAGE_BYTES

Client = Literal["kafka-python", "confluent-kafka"]
# Producers must accept the oversized (> 1 MiB) malformed messages of the bad-input scenario, so
# the monitor, not the client library, is what rejects them.
PRODUCER_MAX_BYTES = 4 * MAX_MESSAGE_BYTES


class Sink(Protocol):
    def send(self, topic: str, key: bytes | None, value: bytes) -> None: ...

    def close(self) -> None:
        """Flush everything; raise if any message could not be delivered."""


class FileSink:
    """Append messages to a JSONL file (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[bytes] = path.open("wb")

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        record: dict[str, str | None] = {"topic": topic,
                                         "key": None if key is None else key.decode()}
        try:
            record["value"] = value.decode("utf-8")
        except UnicodeDecodeError:
            record["value_b64"] = base64.b64encode(value).decode("ascii")
        self._fh.write(orjson.dumps(record) + b"\n")

    def close(self) -> None:
        self._fh.close()


def read_jsonl(path: Path) -> Iterator[tuple[str, bytes | None, bytes]]:
    """Messages ``(topic, key, value)`` of a file written by :class:`FileSink`, in order."""
    with path.open("rb") as fh:
        for line in fh:
            record = orjson.loads(line)
            key = None if record["key"] is None else record["key"].encode()
            value = (record["value"].encode("utf-8") if "value" in record
                     else base64.b64decode(record["value_b64"]))
            yield record["topic"], key, value


class DeliveryError(RuntimeError):
    """Some messages were not acknowledged by the broker."""

    def __init__(self, failed: int, first_error: str) -> None:
        super().__init__(f"{failed} message(s) not delivered; first error: {first_error}")
        self.failed = failed
        self.first_error = first_error


class ConfluentSink:
    """confluent-kafka (librdkafka) producer: the fast path."""

    def __init__(self, bootstrap: str) -> None:
        from confluent_kafka import Producer

        self._producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                                   "linger.ms": 20, "message.max.bytes": PRODUCER_MAX_BYTES,
                                   "enable.idempotence": False})
        self._failed: list[str] = []

    def _on_delivery(self, err: object, _msg: object) -> None:
        if err is not None:
            self._failed.append(str(err))

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=self._on_delivery)
                break
            except BufferError:  # local queue full: wait for deliveries, then retry
                self._producer.poll(0.1)
        self._producer.poll(0)

    def close(self) -> None:
        remaining = self._producer.flush(60)
        if remaining:
            self._failed.append(f"{remaining} still queued after 60 s")
        if self._failed:
            raise DeliveryError(len(self._failed), self._failed[0])


class KafkaPythonSink:
    """kafka-python producer (pure Python)."""

    def __init__(self, bootstrap: str) -> None:
        from kafka import KafkaProducer

        self._producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                                       max_request_size=PRODUCER_MAX_BYTES)
        self._failed: list[str] = []

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        future = self._producer.send(topic, value=value, key=key)
        future.add_errback(lambda exc: self._failed.append(repr(exc)))

    def close(self) -> None:
        self._producer.flush(60)
        self._producer.close(10)
        if self._failed:
            raise DeliveryError(len(self._failed), self._failed[0])


def create_topics(client: Client, bootstrap: str, topics: dict[str, int]) -> None:
    """Create ``{name: partitions}``; topics that already exist are left as they are."""
    if client == "confluent-kafka":
        from confluent_kafka import KafkaError
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": bootstrap})
        futures = admin.create_topics([NewTopic(t, p, 1) for t, p in topics.items()])
        for future in futures.values():
            try:
                future.result(30)
            except Exception as exc:  # KafkaException wrapping a KafkaError
                error = exc.args[0] if exc.args else None
                if getattr(error, "code", lambda: None)() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
        return
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        for name, partitions in topics.items():
            try:
                admin.create_topics([NewTopic(name, partitions, 1)])
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


def kafka_sink(client: Client, bootstrap: str) -> Sink:
    return ConfluentSink(bootstrap) if client == "confluent-kafka" else KafkaPythonSink(bootstrap)
