"""Incidents for the On-call page: the alerts of one cause (``incidents``, migration 0004,
written by the alert engine, :mod:`monitor.alerting.incidents`) and their member alerts.

The table arrives with migration 0004; callers check :func:`ui.queries.existing_tables` first.
Bounded by the event-time range (``ix_incidents_window``) or the primary key, ``LIMIT``-ed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text


@dataclass(frozen=True, slots=True)
class Explained:
    """An alert the incident explains: its slice contains the incident's slice."""

    alert_id: int
    slice: str
    detector: str
    alertname: str
    explained_by: str | None  # e.g. "camera_id=cam-03"


@dataclass(frozen=True, slots=True)
class Incident:
    id: int
    model: str
    model_version: str  # "*" when it spans versions (SLO alerts)
    slice: str  # the most specific slice: the cause's
    state: str  # open | resolved
    severity: str  # page | ticket
    first_window_ms: int  # event time
    last_window_ms: int
    resolved_window_ms: int | None
    detectors: tuple[str, ...]
    explained: tuple[Explained, ...]
    notification: dict[str, Any]  # group_labels, alerts, receiver, posts, first/last_sent_at
    started_at: datetime
    resolved_at: datetime | None

    @property
    def explained_slices(self) -> tuple[str, ...]:
        return tuple(sorted({e.slice for e in self.explained}))


@dataclass(frozen=True, slots=True)
class IncidentAlert:
    alert_id: int
    alertname: str
    severity: str
    state: str  # pending | firing | suppressed | explained | resolved
    slice: str
    detector: str
    subject: str
    explained_by: str | None
    first_window_ms: int
    fired_window_ms: int | None
    resolved_window_ms: int | None
    summary: str
    description: str
    dashboard_url: str


_COLS = ("id, model, model_version, slice, state, severity, first_window_ms, last_window_ms, "
         "resolved_window_ms, detectors, explained, notification, started_at, resolved_at")


def _incident(r: Any) -> Incident:
    return Incident(r.id, r.model, r.model_version, r.slice, r.state, r.severity,
                    r.first_window_ms, r.last_window_ms, r.resolved_window_ms,
                    tuple(r.detectors), tuple(Explained(int(e["alert_id"]), e["slice"],
                                                        e["detector"], e.get("alertname", ""),
                                                        e.get("explained_by"))
                                               for e in r.explained),
                    dict(r.notification), r.started_at, r.resolved_at)


def incidents(conn: Connection, start_ms: int, end_ms: int, model: str | None = None,
              limit: int = 50) -> tuple[Incident, ...]:
    """Incidents active during the event-time range: open ones first, then newest first."""
    rows = conn.execute(text(
        f"SELECT {_COLS} FROM incidents WHERE first_window_ms < :b AND (state = 'open' OR "
        "last_window_ms >= :a) AND (CAST(:m AS text) IS NULL OR model = :m) "
        "ORDER BY state = 'open' DESC, first_window_ms DESC, id DESC LIMIT :lim"),
        {"a": start_ms, "b": end_ms, "m": model, "lim": limit}).all()
    return tuple(_incident(r) for r in rows)


def incident(conn: Connection, incident_id: int) -> Incident | None:
    """One incident by id (the ``incident`` parameter of an alert's dashboard_url)."""
    r = conn.execute(text(f"SELECT {_COLS} FROM incidents WHERE id = :id"),
                     {"id": incident_id}).first()
    return None if r is None else _incident(r)


def incident_alerts(conn: Connection, incident_id: int, limit: int = 200) -> tuple[IncidentAlert, ...]:
    """The incident's alerts, carriers first, then the ones they explain (``ix_alerts_incident``)."""
    rows = conn.execute(text(
        "SELECT id, rule, severity, state, labels, annotations, explained_by, first_window_ms, "
        "fired_window_ms, resolved_window_ms FROM alerts WHERE incident_id = :id "
        "ORDER BY explained_by IS NOT NULL, id LIMIT :lim"), {"id": incident_id, "lim": limit}).all()
    return tuple(IncidentAlert(r.id, r.rule, r.severity, r.state, r.labels.get("slice", ""),
                               r.labels.get("detector", ""), r.labels.get("subject", ""),
                               r.explained_by, r.first_window_ms, r.fired_window_ms,
                               r.resolved_window_ms, r.annotations.get("summary", ""),
                               r.annotations.get("description", ""),
                               r.annotations.get("dashboard_url", ""))
                 for r in rows)
