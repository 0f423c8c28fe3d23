"""The one consumed-message type: what the Kafka clients return, what the decoder reads and
what the JSONL reader (:mod:`monitor.core.ingest.jsonl`) yields for a file."""

from __future__ import annotations

from dataclasses import dataclass


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
