"""The ``rejected_events`` table: every record that failed validation, with its original bytes
and the reason; keyed by (topic, partition, offset), so a replay after a crash inserts nothing
twice."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, text


def insert(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """``rows``: topic, p (partition), o (offset), reason, detail, eid, model, ver, key, raw."""
    if rows:
        conn.execute(text(
            "INSERT INTO rejected_events (topic, kafka_partition, kafka_offset, reason, detail, "
            "event_id, model, model_version, message_key, raw) VALUES (:topic, :p, :o, :reason, "
            ":detail, :eid, :model, :ver, :key, :raw) ON CONFLICT DO NOTHING"), list(rows))


def counts(conn: Connection) -> list[Any]:
    """Rows (model, model_version, reason, n); model and version '' where unknown."""
    return conn.execute(text(
        "SELECT coalesce(model, '') AS model, coalesce(model_version, '') AS model_version, "
        "reason, count(*) AS n FROM rejected_events GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")).all()


def delete_older(conn: Connection, seconds: int, batch_size: int) -> int:
    """Delete up to ``batch_size`` rejected events received more than ``seconds`` ago (through
    ``ix_rejected_received_at``); return how many."""
    return conn.execute(text(
        "DELETE FROM rejected_events WHERE ctid = ANY(ARRAY(SELECT ctid FROM rejected_events "
        "WHERE received_at < now() - make_interval(secs => :s) LIMIT :b))"),
        {"s": seconds, "b": batch_size}).rowcount
