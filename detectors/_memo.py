"""Quantities derived from a reference profile, computed once per profile instead of per window.

A checkpoint evaluates every slice of every closed window against the same active reference
(the core looks it up once and hands the same :class:`~monitor.contract.Reference` object to
each evaluation); what a detector derives from it -- the embedding sketch basis, the reference
sample's features and their covariance, a slice's histograms -- is the same for all of them.

:class:`PerProfile` keys entries on the profile *object* (its ``id``), holding the object too
and checking it is the very same one on a hit: an equal id of a freed profile never returns a
stale entry, and two profiles with one ``reference_id`` (tests build many) never share. It keeps
at most ``size`` entries, dropping the oldest; no clock, no I/O, pure memoisation
(thread-safe; pickled empty).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class PerProfile:
    """A small memo of ``fn()`` per (profile object, key)."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[int, Hashable], tuple[Any, Any]] = OrderedDict()
        self._lock = threading.Lock()  # observing and evaluating may run on two threads

    def get(self, profile: Any, key: Hashable, fn: Callable[[], T]) -> T:
        slot = (id(profile), key)
        with self._lock:
            hit = self._entries.get(slot)
            if hit is not None and hit[0] is profile:
                self._entries.move_to_end(slot)
                return hit[1]
        value = fn()
        with self._lock:
            self._entries[slot] = (profile, value)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._entries)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled empty (a detector sent to an evaluation worker process): entries belong to
        profile objects of this process, the lock to its threads."""
        return {"size": self.size}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["size"])  # type: ignore[misc]
