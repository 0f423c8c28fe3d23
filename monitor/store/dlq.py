"""Replaying dead letters: the ``rejected_events`` rows ``vitmon dlq replay`` may re-publish,
and the ``dlq_replays`` table that makes it idempotent by ``event_id``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, text


def replayable(conn: Connection, reason: str, since_ms: int, until_ms: int | None,
               topic: str) -> list[Any]:
    """The latest rejection per ``event_id`` of ``reason`` from ``topic`` received in
    [since, until), with its original bytes, unless the event was accepted since (it is in
    ``predictions``) or this rejection was replayed already. Rows: event_id, message_key, raw,
    received_at."""
    return conn.execute(text(
        "SELECT DISTINCT ON (r.event_id) r.event_id, r.message_key, r.raw, r.received_at "
        "FROM rejected_events r WHERE r.reason = :reason AND r.topic = :topic "
        "AND r.received_at >= to_timestamp(:since / 1000.0) "
        "AND (CAST(:until AS bigint) IS NULL OR r.received_at < to_timestamp(:until / 1000.0)) "
        "AND r.event_id IS NOT NULL AND r.raw IS NOT NULL "
        "AND NOT EXISTS (SELECT 1 FROM predictions p WHERE p.event_id = r.event_id) "
        "AND NOT EXISTS (SELECT 1 FROM dlq_replays d WHERE d.event_id = r.event_id "
        "                AND d.replayed_at >= r.received_at) "
        "ORDER BY r.event_id, r.received_at DESC"),
        {"reason": reason, "topic": topic, "since": since_ms, "until": until_ms}).all()


def mark(conn: Connection, event_ids: Sequence[str], reason: str) -> None:
    """Record that ``event_ids`` were re-published now (a rejection received later -- the
    replayed copy rejected again -- is replayable again)."""
    if event_ids:
        conn.execute(text(
            "INSERT INTO dlq_replays (event_id, reason) VALUES (:e, :r) ON CONFLICT (event_id) "
            "DO UPDATE SET reason = EXCLUDED.reason, replayed_at = now()"),
            [{"e": e, "r": reason} for e in event_ids])
