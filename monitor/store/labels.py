"""The ``labels`` table: ground truth by ``event_id``; the last label received wins."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, text

from monitor.store import locks

#: The label join's advisory locks: ``pg_advisory_xact_lock(locks.LABEL_JOIN_CLASS, bucket)``,
#: one per bucket of event ids (crc32 mod ``JOIN_BUCKETS``). Few enough that a checkpoint's locks fit
#: PostgreSQL's shared lock table (``max_locks_per_transaction`` x connections) beside other
#: work; the two-int key space never meets the single-bigint locks of migrations and partitions.
JOIN_BUCKETS = 256


def bucket(event_id: str) -> int:
    """The join-lock bucket of an event id: the same in every process.

    >>> bucket("e-1") == bucket("e-1"), 0 <= bucket("e-1") < JOIN_BUCKETS
    (True, True)
    """
    return zlib.crc32(event_id.encode()) % JOIN_BUCKETS


def lock_join(conn: Connection, predicted: Iterable[str], labelled: Iterable[str]) -> None:
    """Serialise the label join with other processes until this transaction ends.

    Under READ COMMITTED, a checkpoint inserting a prediction and another storing its label at
    the same moment would each read the other's table before the other commits, and neither
    would join them. So: the buckets of newly inserted predictions are locked shared (prediction
    writers never wait for each other), those of labels exclusive; each side reads the other's
    table only after its locks are granted, so whichever waits sees the other's commit. All of a
    transaction's buckets are taken in one statement in ascending order: no deadlocks between
    checkpoints."""
    mode = dict.fromkeys({bucket(e) for e in predicted}, False)
    mode.update(dict.fromkeys({bucket(e) for e in labelled}, True))
    if not mode:
        return
    keys = sorted(mode)
    conn.execute(text(
        "SELECT CASE WHEN x THEN pg_advisory_xact_lock(:c, k) "
        "ELSE pg_advisory_xact_lock_shared(:c, k) END "
        "FROM unnest(CAST(:k AS int[]), CAST(:x AS boolean[])) AS u(k, x)"),
        {"c": locks.LABEL_JOIN_CLASS, "k": keys, "x": [mode[k] for k in keys]}).all()


def known(conn: Connection, event_ids: Sequence[str]) -> dict[str, int]:
    """The stored label of each of ``event_ids`` that has one.

    The ids go as one JSON array (orjson, in C), not as a ``text[]`` parameter: psycopg dumps a
    list element by element in Python, 67 ms of CPU for a checkpoint's 60,000 ids against 2 ms
    (and 120 vs 15 ms wall, an empty table); every checkpoint asks, labels or not."""
    rows = conn.execute(text(
        "SELECT l.event_id, l.label FROM labels l WHERE l.event_id IN "
        "(SELECT jsonb_array_elements_text(CAST(:ids AS jsonb)))"),
        {"ids": orjson.dumps(list(event_ids)).decode()}).all()
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
