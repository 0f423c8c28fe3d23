"""Where messages go: a JSONL file, or Kafka through kafka-python or confluent-kafka.

The file format is the one JSONL event format of vitmon (:mod:`monitor.core.ingest.jsonl`):
topic, key and the exact message bytes, one JSON object per line, which
``vitmon reference capture --file`` and ``vitmon report drift --reference-file`` read back.
Kafka goes through the monitor's own clients (:mod:`monitor.core.kafka`), so there is one
producer stack; topics are created explicitly before producing, since the embedded Tansu broker
would otherwise auto-create them with its own partition count.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Literal, Protocol

from monitor.core import kafka
from monitor.core.ingest.jsonl import envelope

Client = Literal["kafka-python", "confluent-kafka"]


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
        self._fh.write(envelope(topic, key, value))

    def close(self) -> None:
        self._fh.close()


class KafkaSink:
    """A :class:`Sink` on the monitor's producer for ``client``. Its message size limit is well
    above the 1 MiB the monitor accepts, so the oversized malformed messages of the bad-input
    scenario reach the monitor, which is what rejects them."""

    def __init__(self, client: Client, bootstrap: str) -> None:
        self._sink = kafka.make_sink(client, bootstrap)

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        self._sink.produce(topic, value, key=key)

    def close(self) -> None:
        """Flush (raising :class:`~monitor.core.kafka.KafkaIOError` for undelivered messages)."""
        try:
            self._sink.flush(60)
        finally:
            self._sink.close()


def create_topics(client: Client, bootstrap: str, topics: dict[str, int]) -> None:
    """Create ``{name: partitions}``; topics that already exist are left as they are."""
    kafka.create_topics(client, bootstrap, topics)


def kafka_sink(client: Client, bootstrap: str) -> Sink:
    return KafkaSink(client, bootstrap)
