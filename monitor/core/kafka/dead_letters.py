"""The dead-letter topic: where the consumer sends what it rejects, with the reason in headers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from monitor.core.ingest.events import REASON_HEADER
from monitor.core.kafka.base import Sink


class DeadLetterTopic:
    """Rejected records to the DLQ topic, at least once: sent as soon as they are decided and
    delivered (:meth:`flush`) before the checkpoint that decided them commits. The table copy
    in ``rejected_events`` is exactly-once."""

    def __init__(self, sink: Sink, topic: str) -> None:
        self.sink, self.topic, self._unflushed = sink, topic, 0

    def send(self, rejected: Sequence[Any]) -> None:
        for r in rejected:
            self.sink.produce(self.topic, r.value or b"", key=r.key, headers=[
                (REASON_HEADER, r.reason.encode()), ("vitmon-reject-detail", r.detail.encode()),
                ("vitmon-source", f"{r.topic}/{r.partition}/{r.offset}".encode())])
        self._unflushed += len(rejected)

    def flush(self) -> None:
        if self._unflushed:
            self._unflushed = 0
            self.sink.flush(30)
