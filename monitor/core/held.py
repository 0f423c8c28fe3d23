"""The partitions one process holds: where it has read to, what PostgreSQL has committed, the
highest event time seen, and the epoch of its claim (fencing, :func:`monitor.store.offsets.claim`).

Kept apart from the consume loop so the loop reads as poll -> buffer -> checkpoint, and every
change of ownership (claim, drop, rewind) is one method here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from monitor.store.keys import TopicPartition
from monitor.store.offsets import Claim


class Held:
    def __init__(self) -> None:
        self.committed: dict[TopicPartition, int] = {}  # next offset committed in PostgreSQL
        self.read: dict[TopicPartition, int] = {}  # next offset to read
        self.max_ts: dict[TopicPartition, int] = {}  # highest event time seen (watermark)
        self.epochs: dict[TopicPartition, int] = {}  # the claim each commit must still hold

    @property
    def tps(self) -> list[TopicPartition]:
        return sorted(self.epochs)

    def __len__(self) -> int:
        return len(self.epochs)

    def __contains__(self, tp: object) -> bool:
        return tp in self.epochs

    def claimed(self, claims: Mapping[TopicPartition, Claim]) -> dict[TopicPartition, int]:
        """Take claimed partitions; -> the offset to start reading each at."""
        for tp, c in claims.items():
            self.committed[tp] = self.read[tp] = c.next_offset
            self.max_ts[tp], self.epochs[tp] = c.watermark_ms, c.epoch
        return {tp: c.next_offset for tp, c in claims.items()}

    def drop(self, tps: Iterable[TopicPartition]) -> set[TopicPartition]:
        """Forget partitions; -> those that were held."""
        gone = set(tps) & set(self.epochs)
        for d in (self.committed, self.read, self.max_ts, self.epochs):
            for tp in gone:
                d.pop(tp, None)
        return gone

    def same_claim(self, epochs: Mapping[TopicPartition, int]) -> list[TopicPartition]:
        """The partitions of ``epochs`` still held under that very claim."""
        return [tp for tp, e in epochs.items() if self.epochs.get(tp) == e]

    def rewind(self) -> dict[TopicPartition, int]:
        """Partitions read past their committed offset go back to it; -> where to seek."""
        back = {tp: self.committed[tp] for tp in self.epochs if self.read[tp] != self.committed[tp]}
        self.read.update(back)
        return back


def names(tps: Iterable[TopicPartition]) -> str:
    """``topic[p],...`` for logs."""
    return ",".join(f"{t}[{p}]" for t, p in sorted(tps))
