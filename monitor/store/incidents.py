"""The ``incidents`` table (alerts of one cause, written inside the checkpoint by the alert
engine), what the Alertmanager sender records of its notifications, and the window's slice
co-occurrence counts that tell which slice contains which (from ``predictions``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, text

SEVERITY_RANK = {"ticket": 1, "page": 2}


@dataclass
class Incident:
    """One incident being updated by a checkpoint (``id`` None until inserted)."""

    id: int | None
    model: str
    model_version: str  # "*" when it holds alerts of several versions (SLOs are version "*")
    slice: str  # the most specific slice
    state: str  # open | resolved
    severity: str
    first_window_ms: int
    last_window_ms: int
    resolved_window_ms: int | None = None
    detectors: list[str] = field(default_factory=list)
    explained: list[dict[str, Any]] = field(default_factory=list)
    changed: bool = True


def load_open(conn: Connection, models: Sequence[str]) -> list[Incident]:
    """Open incidents of these models, locked for this checkpoint (in id order: no deadlocks)."""
    if not models:
        return []
    rows = conn.execute(text(
        "SELECT id, model, model_version, slice, state, severity, first_window_ms, "
        "last_window_ms, resolved_window_ms, detectors, explained FROM incidents "
        "WHERE state = 'open' AND model = ANY(:m) ORDER BY id FOR UPDATE"),
        {"m": sorted(set(models))}).all()
    return [Incident(r.id, r.model, r.model_version, r.slice, r.state, r.severity,
                     r.first_window_ms, r.last_window_ms, r.resolved_window_ms,
                     list(r.detectors), list(r.explained), changed=False) for r in rows]


def save(conn: Connection, incidents: Sequence[Incident]) -> None:
    """Insert new incidents (setting their ids) and update changed ones."""
    for inc in incidents:
        params = {"id": inc.id, "m": inc.model, "v": inc.model_version, "s": inc.slice,
                  "st": inc.state, "sev": inc.severity, "fw": inc.first_window_ms,
                  "lw": inc.last_window_ms, "rw": inc.resolved_window_ms,
                  "det": orjson.dumps(sorted(set(inc.detectors))).decode(),
                  "exp": orjson.dumps(inc.explained).decode()}
        if inc.id is None:
            inc.id = conn.execute(text(
                "INSERT INTO incidents (model, model_version, slice, state, severity, "
                "first_window_ms, last_window_ms, resolved_window_ms, detectors, explained, "
                "notification) VALUES (:m, :v, :s, :st, :sev, :fw, :lw, CAST(:rw AS bigint), "
                "CAST(:det AS jsonb), CAST(:exp AS jsonb), '{}'::jsonb) RETURNING id"),
                params).scalar_one()
        elif inc.changed:
            conn.execute(text(
                "UPDATE incidents SET model_version = :v, slice = :s, state = :st, "
                "severity = :sev, first_window_ms = :fw, last_window_ms = :lw, "
                "resolved_window_ms = CAST(:rw AS bigint), detectors = CAST(:det AS jsonb), "
                "explained = CAST(:exp AS jsonb), updated_at = now(), resolved_at = CASE WHEN "
                ":st = 'resolved' THEN coalesce(resolved_at, now()) ELSE NULL END "
                "WHERE id = :id"), params)
        inc.changed = False


def open_members(conn: Connection, ids: Sequence[int]) -> dict[int, int]:
    """How many open alerts each incident holds (an incident with none is over)."""
    if not ids:
        return {}
    rows = conn.execute(text(
        "SELECT incident_id, count(*) AS n FROM alerts WHERE incident_id = ANY(:ids) AND state "
        "IN ('pending', 'firing', 'suppressed', 'explained') GROUP BY incident_id"),
        {"ids": list(ids)}).all()
    return {int(r.incident_id): int(r.n) for r in rows}


def record_notification(conn: Connection, sent: Sequence[Any], url: str) -> None:
    """The sender's POST of ``sent`` alert rows (with ``labels``, ``state``, ``incident_id``) was
    accepted: remember on each incident what Alertmanager now holds for it."""
    by_incident: dict[int, list[Any]] = {}
    for r in sent:
        if r.incident_id is not None:
            by_incident.setdefault(int(r.incident_id), []).append(r)
    for inc_id, rows in sorted(by_incident.items()):
        note = {"receiver": url, "group_labels": {"incident": str(inc_id),
                                                  "model": rows[0].labels.get("model", "")},
                "alerts": [{"alert_id": r.id, "alertname": r.labels.get("alertname"),
                            "slice": r.labels.get("slice"), "detector": r.labels.get("detector"),
                            "state": "firing" if r.state == "firing" else "resolved"}
                           for r in rows]}
        conn.execute(text(
            "UPDATE incidents SET notification = CAST(:n AS jsonb) || jsonb_build_object("
            "'last_sent_at', now(), 'first_sent_at', coalesce(notification->'first_sent_at', "
            "to_jsonb(now())), 'posts', coalesce((notification->>'posts')::int, 0) + 1) "
            "WHERE id = :id"), {"n": orjson.dumps(note).decode(), "id": inc_id})


def slice_counts(conn: Connection, model: str, version: str, window_start_ms: int,
                 slices: Sequence[str]) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """Events of the window per slice and per pair of these slices (``predictions`` keeps
    each event's slice names), so the engine can tell which slice contains which."""
    rows = conn.execute(text(
        "SELECT a.s AS a, b.s AS b, count(*) AS n FROM (SELECT prediction_slices(slice_ids) "
        "AS arr FROM predictions WHERE model = :m AND model_version = :v "
        "AND window_start_ms = :w) p, unnest(p.arr) AS a(s), unnest(p.arr) AS b(s) "
        "WHERE a.s = ANY(:names) AND b.s = ANY(:names) GROUP BY 1, 2"),
        {"m": model, "v": version, "w": window_start_ms, "names": list(slices)}).all()
    n = {r.a: int(r.n) for r in rows if r.a == r.b}
    both = {(r.a, r.b): int(r.n) for r in rows if r.a != r.b}
    return n, both


def list_incidents(engine: Engine, state: str | None = None,
                   limit: int = 200) -> list[dict[str, Any]]:
    """What ``vitmon alerts --incidents --json`` prints: newest first, with their alerts."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT * FROM incidents WHERE (CAST(:st AS text) IS NULL OR state = :st) "
            "ORDER BY first_window_ms DESC, id DESC LIMIT :lim"), {"st": state, "lim": limit}).all()
        members: dict[int, list[dict[str, Any]]] = {}
        if rows:
            for a in conn.execute(text(
                    "SELECT id, incident_id, rule, severity, state, labels, explained_by FROM "
                    "alerts WHERE incident_id = ANY(:ids) ORDER BY id"),
                    {"ids": [r.id for r in rows]}).all():
                members.setdefault(a.incident_id, []).append(
                    {"id": a.id, "alertname": a.rule, "severity": a.severity, "state": a.state,
                     "slice": a.labels.get("slice"), "detector": a.labels.get("detector"),
                     "explained_by": a.explained_by})
    return [{"id": r.id, "model": r.model, "model_version": r.model_version, "slice": r.slice,
             "state": r.state, "severity": r.severity, "first_window_ms": r.first_window_ms,
             "last_window_ms": r.last_window_ms, "resolved_window_ms": r.resolved_window_ms,
             "detectors": r.detectors, "explained": r.explained, "notification": r.notification,
             "started_at": r.started_at.isoformat(),
             "resolved_at": r.resolved_at.isoformat() if r.resolved_at else None,
             "alerts": members.get(r.id, [])} for r in rows]
