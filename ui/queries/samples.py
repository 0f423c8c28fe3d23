"""Pointers to example inputs (hash and URI; the images themselves are never stored)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text


@dataclass(frozen=True, slots=True)
class SampleRef:
    """A pointer to one input (the image itself is never stored)."""

    event_id: str
    ts_ms: int
    version: str
    pred: int
    confidence: float | None
    label: int | None
    camera: str | None
    input_sha256: str | None
    sample_uri: str | None


_SAMPLE_COLS = ("p.event_id, p.ts_ms, p.model_version, p.pred, p.confidence, l.label, "
                "prediction_attrs(p.attr_ids)->>'camera_id' AS camera, p.input_sha256, p.sample_uri")
_LABEL_JOIN = ("LEFT JOIN LATERAL (SELECT label FROM labels WHERE labels.event_id = p.event_id) l "
               "ON true")


def _sample(r: Any) -> SampleRef:
    return SampleRef(r.event_id, r.ts_ms, r.model_version, r.pred, r.confidence, r.label,
                     r.camera, r.input_sha256, r.sample_uri)


def samples_by_id(conn: Connection, event_ids: Sequence[str]) -> tuple[SampleRef, ...]:
    """Sample pointers of specific events (e.g. the inputs a domain classifier found most new)."""
    if not event_ids:
        return ()
    rows = conn.execute(text(
        f"SELECT {_SAMPLE_COLS} FROM predictions p {_LABEL_JOIN} "
        "WHERE p.event_id = ANY(:ids)"), {"ids": list(event_ids)})
    order = {e: i for i, e in enumerate(event_ids)}
    return tuple(sorted((_sample(r) for r in rows), key=lambda s: order.get(s.event_id, 0)))


def samples_in_window(conn: Connection, model: str, version: str, slice_: str, start_ms: int,
                      end_ms: int, limit: int = 20) -> tuple[SampleRef, ...]:
    """The least confident predictions of a window and slice: the inputs worth looking at."""
    rows = conn.execute(text(
        f"SELECT {_SAMPLE_COLS} FROM predictions p {_LABEL_JOIN} WHERE p.model = :m "
        "AND p.model_version = :v AND p.ts_ms >= :a AND p.ts_ms < :b AND NOT p.is_error "
        "AND (:s = 'all' OR p.slice_ids @> ARRAY[(SELECT t.id FROM prediction_terms t WHERE t.term = :s)]) "
        "ORDER BY p.confidence NULLS LAST, p.event_id LIMIT :lim"),
        {"m": model, "v": version, "s": slice_, "a": start_ms, "b": end_ms, "lim": limit})
    return tuple(_sample(r) for r in rows)
