"""The partitions one process holds: where it has read to, what PostgreSQL has committed, the
highest event time seen, and the epoch of its claim (fencing, :func:`monitor.store.offsets.claim`).

Kept apart from the consume loop so the loop reads as poll -> buffer -> checkpoint, and every
change of ownership (claim, drop, rewind) is one method here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping

import numpy as np

from monitor.store.keys import TopicPartition
from monitor.store.offsets import Claim

log = logging.getLogger(__name__)
#: How far an event time may run ahead of both the wall clock and its partition's watermark
#: and still move the watermark. A simulator at ``--speedup`` runs ahead of the clock but only
#: a little ahead of its own watermark from one poll to the next; a producer whose clock jumped
#: to 9999 (the latest timestamp the decoder accepts) is days ahead of both.
MAX_AHEAD_MS = 86_400_000


class Held:
    def __init__(self) -> None:
        self.committed: dict[TopicPartition, int] = {}  # next offset committed in PostgreSQL
        self.read: dict[TopicPartition, int] = {}  # next offset to read
        self.max_ts: dict[TopicPartition, int] = {}  # highest event time seen (watermark)
        self.epochs: dict[TopicPartition, int] = {}  # the claim each commit must still hold
        self._warned: set[TopicPartition] = set()  # partitions with events too far ahead

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

    def advance(self, tp: TopicPartition, ts_ms: np.ndarray | int,
                now_ms: int | None = None) -> None:
        """Move ``tp``'s watermark to the latest of ``ts_ms`` that is not more than
        :data:`MAX_AHEAD_MS` ahead of both the clock and the watermark. The events past that
        are accepted, stored and observed like any other; they only do not move the watermark,
        which closes windows, judges SLO minutes and counts retention back: one of them would
        otherwise close every window at its first look, push SLO judging into the year 9999
        and, stored with the offsets, keep doing so after every restart.

        >>> held = Held(); held.max_ts[("p", 0)] = 1_000
        >>> held.advance(("p", 0), np.array([5_000, 253_402_214_399_999]), now_ms=2_000)
        >>> held.max_ts[("p", 0)]
        5000
        """
        ts = np.asarray(ts_ms, dtype=np.int64).reshape(-1)
        now = int(time.time() * 1000) if now_ms is None else now_ms
        limit = max(self.max_ts[tp], now) + MAX_AHEAD_MS
        ok = ts[ts <= limit]
        if len(ok):
            self.max_ts[tp] = max(self.max_ts[tp], int(ok.max()))
        if len(ok) < len(ts) and tp not in self._warned:
            self._warned.add(tp)  # once per partition and process: a log line, not a flood
            log.warning("event times ahead of the clock do not move the watermark "
                        "partition=%s[%d] events=%d latest_ts_ms=%d watermark_ms=%d",
                        tp[0], tp[1], len(ts) - len(ok), int(ts.max()), self.max_ts[tp])

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
