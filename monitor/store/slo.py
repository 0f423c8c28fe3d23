"""The ``slo_buckets`` and ``slo_progress`` tables: good/total events of each SLO per 1-minute
event-time bucket (added to by every checkpoint), and the event time up to which each SLO has
been judged."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from sqlalchemy import Connection, text


def add_buckets(conn: Connection, deltas: Mapping[tuple[str, int], list[int]]) -> None:
    """Add ``(slo, bucket_start_ms) -> [good, total]`` (sorted keys: no deadlock between
    processes)."""
    if not deltas:
        return
    keys = sorted(deltas)
    conn.execute(text(
        "INSERT INTO slo_buckets (slo, bucket_start_ms, good, total) "
        "SELECT * FROM unnest(CAST(:s AS text[]), CAST(:b AS bigint[]), CAST(:g AS bigint[]), "
        "CAST(:t AS bigint[])) ON CONFLICT (slo, bucket_start_ms) DO UPDATE SET "
        "good = slo_buckets.good + excluded.good, total = slo_buckets.total + excluded.total"),
        {"s": [k[0] for k in keys], "b": [k[1] for k in keys],
         "g": [deltas[k][0] for k in keys], "t": [deltas[k][1] for k in keys]})


def judged_to(conn: Connection, slo: str) -> int | None:
    """Lock the SLO's progress row; the event time judged so far, or -- the first time -- the
    start of its first bucket with events (None: no events yet)."""
    row = conn.execute(text("SELECT evaluated_to_ms FROM slo_progress WHERE slo = :s "
                            "FOR UPDATE"), {"s": slo}).first()
    if row is not None:
        return row.evaluated_to_ms
    return conn.execute(text("SELECT min(bucket_start_ms) FROM slo_buckets WHERE slo = :s"),
                        {"s": slo}).scalar()


def buckets(conn: Connection, slo: str, lo_ms: int,
            hi_ms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bucket starts, good, total) of the buckets starting in ``[lo_ms, hi_ms)``, in order."""
    data = conn.execute(text(
        "SELECT bucket_start_ms, good, total FROM slo_buckets WHERE slo = :s "
        "AND bucket_start_ms >= :lo AND bucket_start_ms < :hi ORDER BY bucket_start_ms"),
        {"s": slo, "lo": lo_ms, "hi": hi_ms}).all()
    return (np.array([r[0] for r in data], dtype=np.int64),
            np.array([r[1] for r in data], dtype=np.int64),
            np.array([r[2] for r in data], dtype=np.int64))


def set_judged_to(conn: Connection, slo: str, to_ms: int) -> None:
    conn.execute(text(
        "INSERT INTO slo_progress (slo, evaluated_to_ms) VALUES (:s, :t) ON CONFLICT (slo) "
        "DO UPDATE SET evaluated_to_ms = excluded.evaluated_to_ms, updated_at = now()"),
        {"s": slo, "t": to_ms})


def drop_buckets_before(conn: Connection, slo: str, cut_ms: int) -> None:
    conn.execute(text("DELETE FROM slo_buckets WHERE slo = :s AND bucket_start_ms < :cut"),
                 {"s": slo, "cut": cut_ms})
