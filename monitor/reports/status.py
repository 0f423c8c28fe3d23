"""``vitmon status`` and ``vitmon findings``: read-only views of what the monitor stored."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, text


def status(engine: Engine, group: str) -> dict[str, Any]:
    """Per model version: accepted, rejected by reason, labels joined; per partition: offsets."""
    with engine.connect() as conn:
        accepted = conn.execute(text(
            "SELECT model, model_version, accepted FROM ingest_counts ORDER BY 1, 2")).all()
        rejected = conn.execute(text(
            "SELECT coalesce(model, '') AS model, coalesce(model_version, '') AS model_version, "
            "reason, count(*) AS n FROM rejected_events GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")).all()
        joined = conn.execute(text(
            "SELECT p.model, p.model_version, count(*) AS n FROM labels l "
            "JOIN predictions p USING (event_id) GROUP BY 1, 2")).all()
        offsets = conn.execute(text(
            "SELECT topic, kafka_partition, next_offset, high_watermark, watermark_ms, updated_at "
            "FROM consumer_offsets WHERE consumer_group = :g ORDER BY 1, 2"), {"g": group}).all()
    models: dict[tuple[str, str], dict[str, Any]] = {}

    def entry(model: str, version: str) -> dict[str, Any]:
        return models.setdefault((model, version), {
            "model": model, "model_version": version, "accepted": 0, "rejected": {},
            "rejected_total": 0, "labels_joined": 0})

    for r in accepted:
        entry(r.model, r.model_version)["accepted"] = int(r.accepted)
    for r in rejected:
        e = entry(r.model, r.model_version)
        e["rejected"][r.reason] = int(r.n)
        e["rejected_total"] += int(r.n)
    for r in joined:
        entry(r.model, r.model_version)["labels_joined"] = int(r.n)
    rejected_by_reason: dict[str, int] = {}
    for r in rejected:
        rejected_by_reason[r.reason] = rejected_by_reason.get(r.reason, 0) + int(r.n)
    return {
        "models": [models[k] for k in sorted(models)],
        "rejected_by_reason": rejected_by_reason,
        "partitions": [{
            "topic": r.topic, "partition": r.kafka_partition, "committed_offset": r.next_offset,
            "high_watermark": r.high_watermark,
            "lag": None if r.high_watermark is None else max(r.high_watermark - r.next_offset, 0),
            "watermark_ms": r.watermark_ms, "updated_at": r.updated_at.isoformat()}
            for r in offsets],
    }


def findings(engine: Engine, since_ms: int | None = None, detector: str | None = None,
             status_: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT detector, detector_version, model, model_version, slice, subject, "
            "window_start_ms, window_end_ms, status, severity, test, score, threshold, p_value, n, "
            "revision, evaluated_at FROM findings "
            "WHERE (CAST(:since AS bigint) IS NULL OR window_start_ms >= :since) "
            "AND (CAST(:det AS text) IS NULL OR detector = :det) "
            "AND (CAST(:st AS text) IS NULL OR status = :st) "
            "ORDER BY window_start_ms DESC, detector, model, model_version, slice, subject "
            "LIMIT :lim"), {"since": since_ms, "det": detector, "st": status_, "lim": limit}).all()
    return [{**r._asdict(), "evaluated_at": r.evaluated_at.isoformat()} for r in rows]
