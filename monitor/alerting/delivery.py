"""Delivery to Alertmanager's ``POST /api/v2/alerts``: a background sender reading the alerts
table (an outbox), so the consume loop never waits on Alertmanager and nothing is lost while it
is unreachable -- the table *is* the queue, and it survives restarts.

What is sent, as Prometheus does it:

* a firing alert, at once and then every ``resend_interval_s``, with ``endsAt`` =
  now + ``ends_at_intervals`` x the interval (if vitmon goes away, Alertmanager resolves it);
* a resolved (or maintenance-suppressed) alert with ``endsAt`` = its resolution time, at least
  once however late, then again every interval for ``resolved_resend_s``;
* after a failed POST the alert waits ``retry_initial_s`` doubling up to ``retry_max_s``;
* every alert of an incident carries the label ``incident`` (its id) beside ``model``:
  Alertmanager routes grouped by ``[incident, model]`` send one notification per incident
  (``deploy/alertmanager.yml``), and the incident row records what was sent.

Several monitor processes may each run a sender: Alertmanager deduplicates by labels, so a
duplicate POST is harmless.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import requests
from sqlalchemy import Engine

from monitor.alerting.settings import AlertmanagerSettings
from monitor.store import alerts, incidents

log = logging.getLogger(__name__)

def payload(row: Any, now: datetime, am: AlertmanagerSettings) -> dict[str, Any]:
    """One alert in Alertmanager's API v2 format (labels + ``incident`` when it has one)."""
    firing = row.state == "firing"
    ends = (now + timedelta(seconds=am.resend_interval_s * am.ends_at_intervals) if firing
            else row.resolved_at or now)
    labels = dict(row.labels)
    if row.incident_id is not None:
        labels["incident"] = str(row.incident_id)
    return {"labels": labels, "annotations": dict(row.annotations),
            "startsAt": _rfc3339(row.fired_at), "endsAt": _rfc3339(ends),
            "generatorURL": row.annotations.get("dashboard_url", "")}


class AlertSender:
    """Sends what is due, in a loop on its own thread (:meth:`start`), or once (:meth:`send_due`)."""

    def __init__(self, engine: Engine, am: AlertmanagerSettings, metrics: Any = None,
                 batch_size: int = 200) -> None:
        if not am.url:
            raise ValueError("alertmanager.url is not set")
        self.engine = engine
        self.am = am
        self.url = am.url.rstrip("/") + "/api/v2/alerts"
        self.metrics = metrics
        self.batch_size = batch_size
        self.stop_event = threading.Event()
        self.session = requests.Session()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="alert-sender", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the loop, then one last attempt, so a monitor that exits right after a
        checkpoint (``--exit-when-idle``) still delivers what that checkpoint fired."""
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        try:
            self.send_due()
        except Exception as exc:
            log.warning("last alert delivery attempt failed error=%r", exc)

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                while self.send_due() == self.batch_size and not self.stop_event.is_set():
                    pass  # more are due: keep going without waiting
            except Exception as exc:  # the database is unreachable: the next tick retries
                log.warning("alert sender could not read the alerts table error=%r", exc)
            self.stop_event.wait(self.am.poll_s)

    def send_due(self) -> int:
        """POST every alert that is due; returns how many were due."""
        with self.engine.connect() as conn:
            rows = alerts.due(conn, self.am.resend_interval_s, self.am.resolved_resend_s,
                              self.batch_size)
        if not rows:
            return 0
        now = datetime.now(timezone.utc)
        body = [payload(r, now, self.am) for r in rows]
        error = self._post(body)
        with self.engine.begin() as conn:
            if error is None:
                for state in ("firing", "resolved"):
                    sent = [r.id for r in rows if (r.state == "firing") == (state == "firing")]
                    if sent:
                        alerts.mark_sent(conn, sent, state)
                incidents.record_notification(conn, rows, self.url)
            else:
                alerts.mark_failed(conn, [r.id for r in rows], error, self.am.retry_initial_s,
                                   self.am.retry_max_s)
        if self.metrics is not None:
            self.metrics.alert_deliveries.labels("ok" if error is None else "error").inc()
        if error is None:
            log.info("alerts delivered n=%d firing=%d", len(rows),
                     sum(r.state == "firing" for r in rows))
        else:
            log.warning("alertmanager unreachable, will retry n=%d error=%s", len(rows), error)
        return len(rows)

    def _post(self, body: list[dict[str, Any]]) -> str | None:
        try:
            resp = self.session.post(self.url, json=body, timeout=self.am.timeout_s)
        except requests.RequestException as exc:
            return f"{type(exc).__name__}: {exc}"
        if resp.status_code >= 300:
            return f"HTTP {resp.status_code}: {resp.text[:200]}"
        return None


def _rfc3339(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
