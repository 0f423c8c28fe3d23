"""Toy detectors for tests of the core's grouping and checkpoint steps."""

from __future__ import annotations


class RowsSeen:
    """A toy detector whose state is the event ids it observed, in order."""

    name, version = "rows", 1

    def empty(self) -> tuple:
        return ()

    def observe(self, state: tuple, batch) -> tuple:
        return state + tuple(batch.event_id.tolist())
