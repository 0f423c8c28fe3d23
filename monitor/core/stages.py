"""Seconds spent per processing stage (decode, slicing, observe per detector, state encode,
PostgreSQL, evaluation), summed. The consumer exports them as ``vitmon_processing_seconds``
and logs the totals when it stops; ``bench/ingest.py`` prints events/s per stage from them.

>>> clock = StageClock()
>>> with clock("slicing"):
...     pass
>>> sorted(clock.drain())
['slicing']
>>> clock.drain()
{}
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

#: What times a named stage: a :class:`StageClock`, or a wrapper that also checks for a stop.
Clock = Callable[[str], AbstractContextManager[None]]


class StageClock:
    """A thread-safe sum of seconds per stage name."""

    def __init__(self) -> None:
        self._seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - t0)

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self._seconds[stage] = self._seconds.get(stage, 0.0) + seconds

    def drain(self) -> dict[str, float]:
        """The sums since the last drain (and start over)."""
        with self._lock:
            out, self._seconds = self._seconds, {}
        return out
