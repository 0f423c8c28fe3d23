"""The ``labels`` table: ground truth by ``event_id``; the last label received wins."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, text


def known(conn: Connection, event_ids: Sequence[str]) -> dict[str, int]:
    """The stored label of each of ``event_ids`` that has one."""
    rows = conn.execute(text("SELECT l.event_id, l.label FROM labels l WHERE l.event_id = ANY(:ids)"),
                        {"ids": list(event_ids)}).all()
    return {r.event_id: int(r.label) for r in rows}


def upsert(conn: Connection, rows: Mapping[str, dict[str, Any]]) -> dict[str, int]:
    """Store labels (event_id -> {e, l, t, src, p, o}); return the labels they replace.

    The previous labels are read and locked first, in event-id order (no deadlocks)."""
    ids = sorted(rows)
    old = {r.event_id: int(r.label) for r in conn.execute(text(
        "SELECT event_id, label FROM labels WHERE event_id = ANY(:ids) ORDER BY event_id "
        "FOR UPDATE"), {"ids": ids}).all()}
    conn.execute(text(
        "INSERT INTO labels (event_id, label, ts_ms, source, kafka_partition, kafka_offset) "
        "VALUES (:e, :l, :t, :src, :p, :o) ON CONFLICT (event_id) DO UPDATE SET "
        "label = excluded.label, ts_ms = excluded.ts_ms, source = excluded.source, "
        "kafka_partition = excluded.kafka_partition, kafka_offset = excluded.kafka_offset, "
        "received_at = now()"), [rows[e] for e in ids])
    return old
