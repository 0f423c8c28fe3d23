"""The ``alerts`` and ``alert_transitions`` tables: open alerts, their occurrences and
transitions (written inside the checkpoint), the delivery outbox the Alertmanager sender reads
and updates, and the read-only views behind ``vitmon alerts``. Incidents (groups of alerts of
one cause) are :mod:`monitor.store.incidents`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, text

from monitor.store import locks

OPEN = ("pending", "firing", "suppressed", "explained")
#: Open but not delivered as firing: Alertmanager is told these ended (if they had fired).
QUIET = ("suppressed", "explained")


@dataclass(frozen=True, slots=True)
class AlertState:
    """An alert's rule state (see :func:`monitor.alerting.state.step`)."""

    state: str = "inactive"  # inactive | pending | firing | suppressed | explained | resolved
    consecutive: int = 0  # consecutive windows the condition has held
    last_window_ms: int | None = None

    @property
    def open(self) -> bool:
        return self.state in OPEN


@dataclass
class Alert:
    """One alert row being updated by a checkpoint (``id`` None until inserted)."""

    id: int | None
    fingerprint: str
    rule: str
    severity: str
    labels: dict[str, str]
    annotations: dict[str, str]
    state: AlertState
    first_window_ms: int
    fired_window_ms: int | None = None
    resolved_window_ms: int | None = None
    transitions: list[tuple[str, str, int]] = field(default_factory=list)  # from, to, window
    changed: bool = False
    incident_id: int | None = None
    explained_by_alert_id: int | None = None
    explained_by: str | None = None  # the carrying alert's slice


def lock_engine(conn: Connection) -> None:
    """Until this transaction ends, no other checkpoint steps alerts or incidents.

    Row locks cannot serialise rows that do not exist yet: two processes whose checkpoints
    open the same alert (or incident) at the same moment would both find none open and both
    insert it, and the second insert would fail on ``uq_alerts_open_fingerprint`` (23505).
    Under this lock the second waits, then finds the first's rows and steps them."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": locks.ALERT_ENGINE})


def load_open(conn: Connection, fingerprints: Sequence[str]) -> dict[str, Alert]:
    """Open alerts of these fingerprints, locked for this checkpoint (sorted: no deadlocks)."""
    if not fingerprints:
        return {}
    rows = conn.execute(text(
        "SELECT id, fingerprint, rule, severity, state, labels, annotations, consecutive, "
        "last_window_ms, first_window_ms, fired_window_ms, resolved_window_ms, incident_id, "
        "explained_by_alert_id, explained_by FROM alerts "
        "WHERE fingerprint = ANY(:f) AND state = ANY(:open) ORDER BY fingerprint FOR UPDATE"),
        {"f": sorted(fingerprints), "open": list(OPEN)}).all()
    return {r.fingerprint: Alert(r.id, r.fingerprint, r.rule, r.severity, dict(r.labels),
                                 dict(r.annotations),
                                 AlertState(r.state, r.consecutive, r.last_window_ms),
                                 r.first_window_ms, r.fired_window_ms, r.resolved_window_ms,
                                 incident_id=r.incident_id,
                                 explained_by_alert_id=r.explained_by_alert_id,
                                 explained_by=r.explained_by)
            for r in rows}


def save(conn: Connection, incidents: Sequence[Alert]) -> None:
    """Updates first (a resolved row frees its fingerprint), then new rows, then transitions.
    Wall-clock columns take the transaction's ``now()``; event-time columns the windows.
    Afterwards every alert counts as unchanged, with no pending transitions."""
    for inc in sorted((i for i in incidents if i.id is not None and i.changed),
                      key=lambda i: i.id):
        conn.execute(text(
            "UPDATE alerts SET state = CAST(:st AS text), consecutive = :n, last_window_ms = :lw, "
            "annotations = CAST(:ann AS jsonb), fired_window_ms = CAST(:fw AS bigint), "
            "resolved_window_ms = CAST(:rw AS bigint), "
            "fired_at = CASE WHEN :st = 'firing' THEN coalesce(fired_at, now()) ELSE fired_at END, "
            "resolved_at = CASE WHEN :st = 'firing' THEN NULL WHEN :st IN ('resolved', "
            "'suppressed', 'explained') THEN coalesce(resolved_at, now()) ELSE resolved_at END, "
            "incident_id = CAST(:inc AS bigint), explained_by_alert_id = CAST(:eba AS bigint), "
            "explained_by = CAST(:eb AS text), "
            "updated_at = now(), next_attempt_at = CASE WHEN state <> :st THEN NULL "
            "ELSE next_attempt_at END WHERE id = :id"), _params(inc))
    for inc in incidents:
        if inc.id is None:
            inc.id = conn.execute(text(
                "INSERT INTO alerts (fingerprint, rule, severity, state, labels, annotations, "
                "consecutive, last_window_ms, first_window_ms, fired_window_ms, "
                "resolved_window_ms, fired_at, resolved_at, sent_count, send_attempts, incident_id, "
                "explained_by_alert_id, explained_by) VALUES "
                "(:fp, :rule, :sev, :st, CAST(:lab AS jsonb), CAST(:ann AS jsonb), :n, :lw, :first, "
                "CAST(:fw AS bigint), CAST(:rw AS bigint), "
                "CASE WHEN CAST(:fw AS bigint) IS NOT NULL THEN now() END, "
                "CASE WHEN CAST(:st AS text) IN ('resolved', 'suppressed', 'explained') "
                "AND CAST(:fw AS bigint) IS NOT NULL THEN now() END, "
                "0, 0, CAST(:inc AS bigint), CAST(:eba AS bigint), CAST(:eb AS text)) "
                "RETURNING id"), _params(inc)).scalar_one()
    rows = [{"a": inc.id, "fp": inc.fingerprint, "f": f, "t": t, "w": w}
            for inc in incidents for f, t, w in inc.transitions]
    if rows:
        conn.execute(text(
            "INSERT INTO alert_transitions (alert_id, fingerprint, from_state, to_state, "
            "window_start_ms) VALUES (:a, :fp, :f, :t, :w)"), rows)
    for inc in incidents:  # saved: a second save writes only what changed since
        inc.transitions, inc.changed = [], False


def _params(inc: Alert) -> dict[str, Any]:
    return {"id": inc.id, "fp": inc.fingerprint, "rule": inc.rule, "sev": inc.severity,
            "st": inc.state.state, "n": inc.state.consecutive, "lw": inc.state.last_window_ms,
            "first": inc.first_window_ms, "fw": inc.fired_window_ms,
            "rw": inc.resolved_window_ms, "lab": orjson.dumps(inc.labels).decode(),
            "ann": orjson.dumps(inc.annotations).decode(), "inc": inc.incident_id,
            "eba": inc.explained_by_alert_id, "eb": inc.explained_by}


_DUE = text(
    "SELECT id, state, labels, annotations, fired_at, resolved_at, incident_id FROM alerts "
    "WHERE fired_at IS NOT NULL AND (next_attempt_at IS NULL OR next_attempt_at <= now()) AND ("
    "(state = 'firing' AND (last_sent_state IS DISTINCT FROM 'firing' "
    "  OR last_sent_at <= now() - make_interval(secs => :resend))) "
    "OR (state IN ('resolved', 'suppressed', 'explained') AND (last_sent_state IS DISTINCT FROM 'resolved' "
    "  OR (resolved_at >= now() - make_interval(secs => :keep) "
    "      AND last_sent_at <= now() - make_interval(secs => :resend))))) "
    "ORDER BY id LIMIT :lim")


def due(conn: Connection, resend_s: float, resolved_resend_s: float, limit: int) -> list[Any]:
    """Alerts to (re-)send now: firing ones every ``resend_s``, resolved ones at least once and
    then every ``resend_s`` for ``resolved_resend_s``, none while waiting after a failure."""
    return conn.execute(_DUE, {"resend": resend_s, "keep": resolved_resend_s,
                               "lim": limit}).all()


def mark_sent(conn: Connection, ids: Sequence[int], state: str) -> None:
    """Alertmanager accepted these alerts in ``state`` (firing or resolved)."""
    conn.execute(text(
        "UPDATE alerts SET last_sent_at = now(), last_sent_state = :s, "
        "sent_count = sent_count + 1, send_attempts = 0, "
        "next_attempt_at = NULL, last_error = NULL WHERE id = ANY(:ids)"),
        {"s": state, "ids": list(ids)})


def mark_failed(conn: Connection, ids: Sequence[int], error: str, retry_initial_s: float,
                retry_max_s: float) -> None:
    """A POST failed: count the attempt and back off (``retry_initial_s`` doubling, capped)."""
    conn.execute(text(
        "UPDATE alerts SET send_attempts = send_attempts + 1, last_error = :e, "
        "next_attempt_at = now() + make_interval(secs => least(:mx, "
        ":ini * power(2, send_attempts))) WHERE id = ANY(:ids)"),
        {"e": error[:500], "mx": retry_max_s, "ini": retry_initial_s, "ids": list(ids)})


def firing_counts(conn: Connection) -> dict[str, int]:
    rows = conn.execute(text("SELECT severity, count(*) AS n FROM alerts WHERE state = 'firing' "
                             "GROUP BY severity")).all()
    return {"page": 0, "ticket": 0, **{r.severity: int(r.n) for r in rows}}


def list_alerts(engine: Engine, state: str | None = None, limit: int = 1000,
                history: bool = False) -> list[dict[str, Any]]:
    """What ``vitmon alerts --json`` prints: newest first."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT * FROM alerts WHERE (CAST(:st AS text) IS NULL OR state = :st) "
            "ORDER BY updated_at DESC, id DESC LIMIT :lim"), {"st": state, "lim": limit}).all()
        trans: dict[int, list[dict[str, Any]]] = {}
        if history and rows:
            for t in conn.execute(text(
                    "SELECT alert_id, from_state, to_state, window_start_ms, at FROM "
                    "alert_transitions WHERE alert_id = ANY(:ids) ORDER BY id"),
                    {"ids": [r.id for r in rows]}).all():
                trans.setdefault(t.alert_id, []).append(
                    {"from": t.from_state, "to": t.to_state,
                     "window_start_ms": t.window_start_ms, "at": _iso(t.at)})
    out = []
    for r in rows:
        item = {
            "id": r.id, "fingerprint": r.fingerprint, "alertname": r.rule,
            "severity": r.severity, "state": r.state, "labels": r.labels,
            "annotations": r.annotations, "startsAt": _iso(r.fired_at),
            "endsAt": _iso(r.resolved_at), "first_window_ms": r.first_window_ms,
            "fired_window_ms": r.fired_window_ms, "resolved_window_ms": r.resolved_window_ms,
            "last_window_ms": r.last_window_ms, "consecutive": r.consecutive,
            "incident_id": r.incident_id, "explained_by": r.explained_by,
            "explained_by_alert_id": r.explained_by_alert_id,
            "delivery": {"status": delivery_status(r), "last_sent_at": _iso(r.last_sent_at),
                         "last_sent_state": r.last_sent_state, "sent_count": r.sent_count,
                         "failed_attempts": r.send_attempts, "last_error": r.last_error,
                         "next_attempt_at": _iso(r.next_attempt_at)}}
        if history:
            item["transitions"] = trans.get(r.id, [])
        out.append(item)
    return out


def delivery_status(r: Any) -> str:
    """not_applicable (never fired), delivered (Alertmanager has the current state),
    retrying (the last POST failed), pending (not yet sent in its current state)."""
    if r.fired_at is None:
        return "not_applicable"
    if r.send_attempts:
        return "retrying"
    want = "firing" if r.state == "firing" else "resolved"
    return "delivered" if r.last_sent_state == want else "pending"


def _iso(t: Any) -> str | None:
    return None if t is None else t.isoformat()
