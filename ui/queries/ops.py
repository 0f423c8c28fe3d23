"""Operational views: consumer lag, rejected events, SLO burn rates and alerts.

SLO and alert tables arrive with migration 0003; callers check :func:`ui.queries.existing_tables`
first and show an empty state when they are missing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

SLO_DETECTOR = "slo_burn_rate"
MAX_SLO_POINTS = 720  # per SLO: minute findings are thinned to at most this many points


@dataclass(frozen=True, slots=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int
    log_end: int | None
    watermark_ms: int
    updated_at: datetime

    @property
    def lag(self) -> int | None:
        return None if self.log_end is None else max(self.log_end - self.committed, 0)


@dataclass(frozen=True, slots=True)
class RejectedReason:
    reason: str
    n: int
    last_at: datetime


@dataclass(frozen=True, slots=True)
class RejectedEvent:
    received_at: datetime
    reason: str
    detail: str
    topic: str
    partition: int
    offset: int
    event_id: str | None
    model_version: str | None


@dataclass(frozen=True, slots=True)
class SloPoint:
    """One judged minute of one SLO (the ``slo_burn_rate`` finding)."""

    slo: str
    slice: str
    minute_ms: int
    status: str
    severity: str
    sli: str
    objective: float
    burn_rates: Mapping[str, float | None]  # window ("5m", "1h", ...) -> burn rate
    budget_remaining: float | None
    tiers: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class Alert:
    id: int
    rule: str
    severity: str
    state: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    first_window_ms: int
    last_window_ms: int
    fired_window_ms: int | None
    resolved_window_ms: int | None
    fired_at: datetime | None
    resolved_at: datetime | None
    delivered: str  # "sent 3x" / "not sent" / "retrying: <error>"


@dataclass(frozen=True, slots=True)
class Transition:
    alert_id: int
    from_state: str
    to_state: str
    window_start_ms: int
    at: datetime


def consumer_lag(conn: Connection, group: str) -> tuple[PartitionLag, ...]:
    rows = conn.execute(text(
        "SELECT topic, kafka_partition, next_offset, high_watermark, watermark_ms, updated_at "
        "FROM consumer_offsets WHERE consumer_group = :g ORDER BY 1, 2"), {"g": group})
    return tuple(PartitionLag(r.topic, r.kafka_partition, r.next_offset, r.high_watermark,
                              r.watermark_ms, r.updated_at) for r in rows)


def rejected(conn: Connection, since: datetime,
             limit: int = 20) -> tuple[tuple[RejectedReason, ...], tuple[RejectedEvent, ...]]:
    """Rejections received since ``since`` (wall time: a bad event has no trusted event time),
    by reason, and the most recent ones (``ix_rejected_received_at``)."""
    by_reason = conn.execute(text(
        "SELECT reason, count(*) AS n, max(received_at) AS last_at FROM rejected_events "
        "WHERE received_at >= :t GROUP BY reason ORDER BY n DESC"), {"t": since})
    recent = conn.execute(text(
        "SELECT received_at, reason, detail, topic, kafka_partition, kafka_offset, event_id, "
        "model_version FROM rejected_events WHERE received_at >= :t "
        "ORDER BY received_at DESC, kafka_offset DESC LIMIT :lim"), {"t": since, "lim": limit})
    return (tuple(RejectedReason(r.reason, int(r.n), r.last_at) for r in by_reason),
            tuple(RejectedEvent(r.received_at, r.reason, r.detail[:300], r.topic,
                                r.kafka_partition, r.kafka_offset, r.event_id, r.model_version)
                  for r in recent))


def slo_series(conn: Connection, model: str, start_ms: int, end_ms: int,
               max_points: int = MAX_SLO_POINTS) -> tuple[SloPoint, ...]:
    """Every SLO of ``model`` over the range, thinned to ``max_points`` minutes per SLO (the
    newest minute always kept). SLO findings cover all versions (``model_version = '*'``)."""
    stride = max(1, math.ceil((end_ms - start_ms) / 60_000 / max_points))
    rows = conn.execute(text(
        "SELECT subject, slice, window_start_ms, status, severity, details FROM findings "
        "WHERE detector = :d AND model = :m AND model_version = '*' "
        "AND window_start_ms >= :a AND window_start_ms < :b "
        "AND (window_start_ms / 60000) % :k = 0 ORDER BY subject, window_start_ms"),
        {"d": SLO_DETECTOR, "m": model, "a": start_ms, "b": end_ms, "k": stride})
    out = []
    for r in rows:
        d = r.details or {}
        out.append(SloPoint(r.subject, r.slice, r.window_start_ms, r.status, r.severity,
                            d.get("sli", ""), float(d.get("objective", math.nan)),
                            d.get("burn_rates", {}), d.get("error_budget_remaining"),
                            tuple(d.get("tiers", ()))))
    return tuple(out)


def _delivered(sent_count: int, attempts: int, error: str | None) -> str:
    if attempts and error:
        return f"retrying ({attempts} failed): {error[:120]}"
    return f"sent {sent_count}x" if sent_count else "not sent"


_ALERT_COLS = ("id, rule, severity, state, labels, annotations, first_window_ms, last_window_ms, "
               "fired_window_ms, resolved_window_ms, fired_at, resolved_at, sent_count, "
               "send_attempts, last_error")


def alerts(conn: Connection, start_ms: int, end_ms: int, model: str | None = None,
           limit: int = 500) -> tuple[Alert, ...]:
    """Open alerts (pending, firing, suppressed, explained by a more specific slice), then
    resolved ones that were active during the range; newest first within each, at most
    ``limit`` of each (``ix_alerts_state``)."""
    rows = conn.execute(text(
        f"(SELECT {_ALERT_COLS} FROM alerts WHERE state IN ('pending', 'firing', 'suppressed', "
        "'explained') "
        "AND (CAST(:m AS text) IS NULL OR labels->>'model' = :m) ORDER BY id DESC LIMIT :lim) "
        f"UNION ALL (SELECT {_ALERT_COLS} FROM alerts WHERE state = 'resolved' "
        "AND first_window_ms < :b AND coalesce(resolved_window_ms, last_window_ms) >= :a "
        "AND (CAST(:m AS text) IS NULL OR labels->>'model' = :m) ORDER BY id DESC LIMIT :lim)"),
        {"a": start_ms, "b": end_ms, "m": model, "lim": limit})
    return tuple(Alert(r.id, r.rule, r.severity, r.state, r.labels or {}, r.annotations or {},
                       r.first_window_ms, r.last_window_ms, r.fired_window_ms,
                       r.resolved_window_ms, r.fired_at, r.resolved_at,
                       _delivered(r.sent_count, r.send_attempts, r.last_error)) for r in rows)


def firing_by_severity(conn: Connection, model: str | None = None) -> Mapping[str, int]:
    """How many alerts fire now, per severity (``ix_alerts_state``)."""
    rows = conn.execute(text(
        "SELECT severity, count(*) AS n FROM alerts WHERE state = 'firing' "
        "AND (CAST(:m AS text) IS NULL OR labels->>'model' = :m) GROUP BY severity"), {"m": model})
    return {r.severity: int(r.n) for r in rows}


def transitions(conn: Connection, alert_ids: Sequence[int]) -> tuple[Transition, ...]:
    """State changes of the given alerts, in order (``ix_alert_transitions_alert``)."""
    if not alert_ids:
        return ()
    rows = conn.execute(text(
        "SELECT alert_id, from_state, to_state, window_start_ms, at FROM alert_transitions "
        "WHERE alert_id = ANY(:ids) ORDER BY alert_id, id"), {"ids": list(alert_ids)})
    return tuple(Transition(r.alert_id, r.from_state, r.to_state, r.window_start_ms, r.at)
                 for r in rows)
