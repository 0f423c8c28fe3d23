"""The one consumed-message type: what the Kafka clients return, what the decoder reads and
what the JSONL reader (:mod:`monitor.core.ingest.jsonl`) yields for a file."""

from __future__ import annotations

from typing import NamedTuple


class Record(NamedTuple):
    """One consumed message, independent of the client library.

    ``timestamp_ms`` is -1 when the broker gives none. ``headers`` is empty when the message
    has none (the DLQ's reject reason travels in a header).

    A named tuple, not a frozen dataclass: a poll makes one per message, and a frozen
    dataclass's ``__init__`` (one ``object.__setattr__`` per field) cost ~2.3 us of the
    ~2.7 us per message that ``ConfluentSource.poll`` spent besides ``consume``; the client
    builds these with ``tuple.__new__`` (~0.4 us). Read-only attributes, as before.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    headers: tuple[tuple[str, bytes], ...] = ()
