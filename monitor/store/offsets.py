"""The ``consumer_offsets`` table: the next offset to read per (group, partition), committed in
the same transaction as the results, with the highest event time seen (the watermark) and the
last log end read (for lag), and the epoch of the process that claimed the partition last
(fencing: only that claim may commit)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from monitor.store.keys import TopicPartition


@dataclass(frozen=True)
class Claim:
    """A partition as its claimer found it: where to resume, and the epoch it now holds."""

    next_offset: int
    watermark_ms: int
    epoch: int


def claim(conn: Connection, group: str, tps: Sequence[TopicPartition],
          owner: str) -> dict[TopicPartition, Claim]:
    """Claim ``tps`` for ``owner``: the epoch of each goes up by one (a row at offset 0 is
    created for a partition never seen). A checkpoint of an earlier claim can no longer commit
    (:func:`lock` returns the new epoch); one committing right now finishes first (row lock),
    and the claim then reads its offsets."""
    tps = sorted(tps)
    rows = conn.execute(text(
        "INSERT INTO consumer_offsets AS co (consumer_group, topic, kafka_partition, "
        "next_offset, watermark_ms, owner_epoch, owner) SELECT :g, t, p, 0, 0, 1, :o FROM "
        "unnest(CAST(:t AS text[]), CAST(:p AS int[])) AS u(t, p) "
        "ON CONFLICT (consumer_group, topic, kafka_partition) DO UPDATE SET "
        "owner_epoch = co.owner_epoch + 1, owner = excluded.owner "
        "RETURNING topic, kafka_partition, next_offset, watermark_ms, owner_epoch"),
        {"g": group, "o": owner, "t": [t for t, _ in tps], "p": [p for _, p in tps]}).all()
    return {(r.topic, r.kafka_partition): Claim(r.next_offset, r.watermark_ms, r.owner_epoch)
            for r in rows}


def lock(conn: Connection, group: str, tps: Sequence[TopicPartition],
         for_update: bool = True) -> dict[TopicPartition, tuple[int, int, int]]:
    """Lock the rows of ``tps`` (sorted: no deadlocks) -> (watermark_ms, next_offset, epoch);
    with ``for_update=False`` only read them."""
    tps = sorted(tps)
    rows = conn.execute(text(
        "SELECT topic, kafka_partition, next_offset, watermark_ms, owner_epoch "
        "FROM consumer_offsets WHERE consumer_group = :g AND (topic, kafka_partition) IN "
        "(SELECT * FROM unnest(CAST(:t AS text[]), CAST(:p AS int[]))) "
        "ORDER BY topic, kafka_partition" + (" FOR UPDATE" if for_update else "")),
        {"g": group, "t": [t for t, _ in tps], "p": [p for _, p in tps]}).all()
    return {(r.topic, r.kafka_partition): (r.watermark_ms, r.next_offset, r.owner_epoch)
            for r in rows}


def save(conn: Connection, group: str, next_offsets: Mapping[TopicPartition, int],
         watermarks: Mapping[TopicPartition, int],
         high_watermarks: Mapping[TopicPartition, int]) -> None:
    """Store the next offset and watermark of each partition read; for partitions not read
    this time only their log end (``high_watermarks``) moves. A partition absent from
    ``high_watermarks`` keeps the log end stored last."""
    rows = [{"g": group, "t": tp[0], "p": tp[1], "o": nxt, "w": watermarks[tp],
             "h": high_watermarks.get(tp)} for tp, nxt in next_offsets.items()]
    idle = [{"g": group, "t": tp[0], "p": tp[1], "h": h}
            for tp, h in high_watermarks.items() if tp not in next_offsets]
    if idle:
        conn.execute(text(
            "UPDATE consumer_offsets SET high_watermark = :h WHERE consumer_group = :g "
            "AND topic = :t AND kafka_partition = :p"), idle)
    if rows:
        conn.execute(text(
            "INSERT INTO consumer_offsets (consumer_group, topic, kafka_partition, next_offset, "
            "watermark_ms, high_watermark) VALUES (:g, :t, :p, :o, :w, :h) "
            "ON CONFLICT (consumer_group, topic, kafka_partition) DO UPDATE SET "
            "next_offset = excluded.next_offset, watermark_ms = excluded.watermark_ms, "
            # a checkpoint without a fresh read (they come every LAG_REFRESH_S) keeps the last:
            # NULL here made `vitmon status` show no lag for a drained partition
            "high_watermark = coalesce(excluded.high_watermark, consumer_offsets.high_watermark), "
            "updated_at = now()"), rows)


def max_watermark(conn: Connection, besides_topic: str | None = None) -> int | None:
    """The highest event time any consumer has committed (None before the first checkpoint),
    over every topic but ``besides_topic`` (the labels topic: its rows hold the labels' own
    event time, which says when labels arrived, not how far the predictions have come)."""
    return conn.execute(text("SELECT max(watermark_ms) FROM consumer_offsets WHERE "
                             "CAST(:t AS text) IS NULL OR topic <> :t"),
                        {"t": besides_topic}).scalar()


def partitions(conn: Connection, group: str) -> list[dict[str, Any]]:
    """Per partition of ``group``: committed offset, log end, lag, watermark (``vitmon status``)."""
    rows = conn.execute(text(
        "SELECT topic, kafka_partition, next_offset, high_watermark, watermark_ms, updated_at, "
        "owner, owner_epoch "
        "FROM consumer_offsets WHERE consumer_group = :g ORDER BY 1, 2"), {"g": group}).all()
    return [{"topic": r.topic, "partition": r.kafka_partition, "committed_offset": r.next_offset,
             "high_watermark": r.high_watermark,
             "lag": None if r.high_watermark is None else max(r.high_watermark - r.next_offset, 0),
             "watermark_ms": r.watermark_ms, "updated_at": r.updated_at.isoformat(),
             "owner": r.owner, "owner_epoch": r.owner_epoch}
            for r in rows]
