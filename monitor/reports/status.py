"""``vitmon status``: what the monitor stored, per model version and per partition."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from monitor.store import embedding_dims, ingest_counts, offsets, predictions, rejected


def status(engine: Engine, group: str) -> dict[str, Any]:
    """Per model version: accepted, rejected by reason, labels joined, events parked while its
    embedding dimension is undecided; per partition: offsets."""
    with engine.connect() as conn:
        accepted = ingest_counts.totals(conn)
        rejects = rejected.counts(conn)
        joined = predictions.labels_joined(conn)
        partitions = offsets.partitions(conn, group)
        parked = embedding_dims.pending(conn)
    models: dict[tuple[str, str], dict[str, Any]] = {}

    def entry(model: str, version: str) -> dict[str, Any]:
        return models.setdefault((model, version), {
            "model": model, "model_version": version, "accepted": 0, "rejected": {},
            "rejected_total": 0, "labels_joined": 0, "parked": 0})

    for (model, version), n in accepted.items():
        entry(model, version)["accepted"] = n
    for r in rejects:
        e = entry(r.model, r.model_version)
        e["rejected"][r.reason] = int(r.n)
        e["rejected_total"] += int(r.n)
    for (model, version), n in joined.items():
        entry(model, version)["labels_joined"] = n
    for r in parked:
        entry(r.model, r.model_version)["parked"] = int(r.n)
    rejected_by_reason: dict[str, int] = {}
    for r in rejects:
        rejected_by_reason[r.reason] = rejected_by_reason.get(r.reason, 0) + int(r.n)
    return {"models": [models[k] for k in sorted(models)],
            "rejected_by_reason": rejected_by_reason, "partitions": partitions}
