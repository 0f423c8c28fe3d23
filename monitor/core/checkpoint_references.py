"""The active references a checkpoint observes and evaluates against.

:class:`ReferenceLookup` is what the service passes in (``monitor.store.references``'
cached lookup); :class:`CheckpointReferences` pins one answer per (model, version) for the
whole checkpoint attempt, so observing (step 4) and evaluating (step 6) see the same reference.
Imports only the contract and SQLAlchemy's ``Connection`` type.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import Connection

from monitor.contract import Reference


class ReferenceLookup(Protocol):
    """The active reference of a (model, version), as the service looks it up (cached)."""

    def __call__(self, conn: Connection, model: str, version: str) -> Reference | None: ...

    def tick(self) -> None:
        """Called at the start of every checkpoint: lets cached entries expire."""

    def forget(self, model: str, version: str) -> None:
        """``(model, version)``'s reference changed (a slice warmed up): drop cached copies."""


class CheckpointReferences:
    """The active reference of each (model, version) for one checkpoint attempt: looked up once
    through the service's cached lookup, and the same for observing (a
    :class:`~monitor.contract.ReferenceObserver`) and for evaluating."""

    def __init__(self, lookup: ReferenceLookup | None, conn: Connection | None) -> None:
        self.lookup, self.conn = lookup, conn
        self._seen: dict[tuple[str, str], Reference | None] = {}

    def __call__(self, model: str, version: str) -> Reference | None:
        key = (model, version)
        if key not in self._seen:
            self._seen[key] = (self.lookup(self.conn, model, version)
                               if self.lookup is not None else None)
        return self._seen[key]

    def replace(self, reference: Reference) -> None:
        """``reference`` changed in this transaction: use the new one from now on."""
        self._seen = {k: (reference if v is not None and v.reference_id == reference.reference_id
                          else v) for k, v in self._seen.items()}
        self._seen[(reference.model, reference.model_version)] = reference

    def pinned(self) -> dict[tuple[str, str], Reference | None]:
        """Every (model, version) looked up in this attempt and its reference."""
        return dict(self._seen)
