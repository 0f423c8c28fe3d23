"""The ``ingest_counts`` table: accepted events per model version, added to by every checkpoint
(the predictions table is pruned after the label horizon; these totals are not)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection, text


def add(conn: Connection, accepted: Mapping[tuple[str, str], int]) -> None:
    """Add ``(model, version) -> n`` (sorted: two processes lock rows in the same order)."""
    if accepted:
        conn.execute(text(
            "INSERT INTO ingest_counts (model, model_version, accepted) VALUES (:m, :v, :n) "
            "ON CONFLICT (model, model_version) DO UPDATE SET "
            "accepted = ingest_counts.accepted + excluded.accepted, updated_at = now()"),
            [{"m": m, "v": v, "n": n} for (m, v), n in sorted(accepted.items())])


def totals(conn: Connection) -> dict[tuple[str, str], int]:
    rows = conn.execute(text(
        "SELECT model, model_version, accepted FROM ingest_counts ORDER BY 1, 2")).all()
    return {(r.model, r.model_version): int(r.accepted) for r in rows}
