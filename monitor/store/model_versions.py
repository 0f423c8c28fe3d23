"""The ``model_versions`` table: the (model, version) pairs admitted under the cardinality caps.
Admission is serialised across processes by a transaction-scoped advisory lock."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, text

from monitor.store import locks


def admitted(conn: Connection) -> set[tuple[str, str]]:
    rows = conn.execute(text("SELECT model, model_version FROM model_versions")).all()
    return {(r.model, r.model_version) for r in rows}


def lock_and_load(conn: Connection) -> set[tuple[str, str]]:
    """Take the admission lock (until commit) and return the admitted pairs."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": locks.VERSION_ADMISSION})
    return admitted(conn)


def admit(conn: Connection, pairs: Iterable[tuple[str, str]]) -> None:
    rows = [{"m": m, "v": v} for m, v in sorted(set(pairs))]
    if rows:
        conn.execute(text("INSERT INTO model_versions (model, model_version) VALUES (:m, :v) "
                          "ON CONFLICT DO NOTHING"), rows)
