"""Pointers to example inputs (hash and URI; the images themselves are never stored)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from detectors.examples import Examples
from monitor.store.window_states import load_states


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


@dataclass(frozen=True, slots=True)
class Example:
    """One example input of the ``examples`` detector's sample (a pointer, never the image)."""

    event_id: str
    ts_ms: int
    uri: str
    sha256: str
    pred: int
    confidence: float | None


def examples(conn: Connection, model: str, version: str, slice_: str, windows_from_ms: int,
             windows_to_ms: int, events_from_ms: int, events_to_ms: int,
             k: int = 8) -> tuple[Example, ...]:
    """The ``examples`` detector's sample merged over the windows starting in
    ``[windows_from, windows_to)``, keeping events whose time is in ``[events_from, events_to)``
    (a reference range need not align with windows). One indexed read of ``window_states``."""
    det = Examples(k=64)  # merge a wider sample, so filtering by event time still leaves k
    stored = load_states(conn, {det.name: det}, model=model, versions=(version,), slice_=slice_,
                         windows=(windows_from_ms, windows_to_ms))
    state = det.empty()
    for s in stored:
        state = det.merge(state, s.state)
    rows = [Example(e, t, u, h, p, None if c != c else c) for _, e, t, u, h, p, c in zip(
        state.hash, state.event_id, state.ts_ms, state.uri, state.sha256, state.pred,
        state.confidence, strict=True) if events_from_ms <= t < events_to_ms]
    return tuple(rows[:k])


@dataclass(frozen=True, slots=True)
class ReferenceRange:
    version: str  # the version whose traffic the reference was captured from
    from_ms: int
    to_ms: int


def reference_range(conn: Connection, model: str, version: str,
                    baseline: str | None) -> ReferenceRange | None:
    """The event-time range the active reference of ``version`` (else of ``baseline``) was
    captured from; None when there is none or it was captured from a file."""
    for v in (version, baseline):
        if not v:
            continue
        row = conn.execute(text(
            "SELECT source FROM reference_profiles WHERE model = :m AND model_version = :v "
            "AND active"), {"m": model, "v": v}).one_or_none()
        if row is not None:
            lo, sep, hi = row.source.removeprefix("range:").partition("..")
            if row.source.startswith("range:") and sep and lo.isdigit() and hi.isdigit():
                return ReferenceRange(v, int(lo), int(hi))
            return None
    return None
