"""The ``catalog`` table: facts that must stay stable across restarts, in insertion order: the
embedding dimension per model a gate-less decoder learnt (the service decodes with a gate and
writes none). Since migration 0005 decided dimensions per (model, version) live in
``embedding_dims`` and admitted slice values in ``slice_admissions`` (issue 13: nothing is
learnt from one event); older ``slice_value`` rows are no longer read."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, text

EMBEDDING_DIM, SLICE_VALUE = "embedding_dim", "slice_value"


def load(conn: Connection) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Learnt embedding dimensions and admitted (attribute, value) pairs (admission order)."""
    rows = conn.execute(text("SELECT kind, name, value FROM catalog ORDER BY seq")).all()
    dims = {r.name: int(r.value) for r in rows if r.kind == EMBEDDING_DIM}
    values = [(r.name, r.value) for r in rows if r.kind == SLICE_VALUE]
    return dims, values


def add(conn: Connection, entries: Sequence[tuple[str, str, str]]) -> None:
    """``(kind, name, value)`` entries; known ones are left as they are."""
    if entries:
        conn.execute(text("INSERT INTO catalog (kind, name, value) VALUES (:k, :n, :v) "
                          "ON CONFLICT DO NOTHING"),
                     [{"k": k, "n": n, "v": v} for k, n, v in entries])
