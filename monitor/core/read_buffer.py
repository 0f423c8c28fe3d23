"""What the consume loop has read since its last checkpoint, and the offsets each part covers.

A poll is split into the requests the decode worker takes (``chunk`` prediction records each);
every request carries its :data:`Span` -- per partition, the read position before its first
record and the offset after its last -- and a buffer covers a span only once the request's
answer is in it. So a checkpoint can take the buffer as decoded so far while the rest of the
poll is still being decoded: those requests land in the next buffer, which starts where this one
ends (the checkpoint checks that each buffer starts at the committed offset).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from monitor.core.ingest.records import Record
from monitor.store.keys import TopicPartition

#: per partition: [the read position before the first record, the offset after the last]
Span = dict[TopicPartition, list[int]]


@dataclass
class ReadBuffer:
    """Records read since the last checkpoint, already decoded."""

    start: dict[TopicPartition, int] = field(default_factory=dict)
    next: dict[TopicPartition, int] = field(default_factory=dict)
    batches: list[Any] = field(default_factory=list)
    labels: list[Any] = field(default_factory=list)
    rejected: list[Any] = field(default_factory=list)
    parked: list[Any] = field(default_factory=list)  # held for the checkpoint's intake
    settles: bool = False  # parked events the intake expects to settle: checkpoint them now
    events: int = 0
    opened_at: float = field(default_factory=time.monotonic)

    def cover(self, span: Span, events: int) -> None:
        """The records of ``span`` (``events`` of them) are in the buffer now."""
        for tp, (first, after) in span.items():
            self.start.setdefault(tp, first)
            self.next[tp] = after
        self.events += events


@dataclass
class Part:
    """One decode request's records: predictions, the poll's labels (with its last request
    only) and the offsets they cover."""

    predictions: list[Record] = field(default_factory=list)
    labels: list[Record] = field(default_factory=list)
    span: Span = field(default_factory=dict)

    @property
    def events(self) -> int:
        return len(self.predictions) + len(self.labels)


def split_poll(records: Sequence[Record], read: dict[TopicPartition, int], labels_topic: str,
               chunk: int) -> list[Part]:
    """``records`` as parts of at most ``chunk`` predictions, in order, advancing ``read``
    (the next offset to read per held partition). A record of a partition not held, or before
    its read position (fetched before a seek back), is skipped. The labels go with the last
    part; a poll of labels only is one part."""
    parts, labels = [Part()], Part()
    for r in records:
        tp = (r.topic, r.partition)
        expected = read.get(tp)
        if expected is None or r.offset < expected:
            continue
        read[tp] = r.offset + 1
        if r.topic == labels_topic:
            part = labels
            labels.labels.append(r)
        else:
            if len(parts[-1].predictions) == chunk:
                parts.append(Part())
            part = parts[-1]
            part.predictions.append(r)
        part.span.setdefault(tp, [expected, 0])[1] = r.offset + 1
    parts[-1].labels, parts[-1].span = labels.labels, parts[-1].span | labels.span
    return [p for p in parts if p.events]
