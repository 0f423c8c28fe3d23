"""The alert engine as a checkpoint hook: every finding of the checkpoint (window detectors, SLO
burn rates, version health) goes through the rules and the state machine, and every state
change is written to ``alerts``/``alert_transitions`` in the checkpoint's own transaction. Alert
state is therefore exactly-once like every other result: a crash before the commit replays the
same findings into the same transitions. Delivery to Alertmanager happens elsewhere
(:mod:`monitor.alerting.delivery` reads the table), so the consume loop never waits on it.

Must run after the hooks that add findings (the SLO and version-health hooks).
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection

from monitor.alerting.rules import Observation, alert_labels, annotations, fingerprint, iso_time, observe
from monitor.alerting.settings import AlertSettings
from monitor.alerting.state import AlertState, step
from monitor.contract import Batch
from monitor.core.checkpoint import CheckpointResult
from monitor.core.metrics import Metrics
from monitor.store import alerts as store
from monitor.store.alerts import Incident
from monitor.store.findings import group_findings

log = logging.getLogger(__name__)


class AlertHook:
    """A :class:`~monitor.core.checkpoint.CheckpointHook` and ``AfterCommitHook``."""

    def __init__(self, settings: AlertSettings, ui_base_url: str, metrics: Metrics | None = None,
                 runbooks: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.ui_base_url = ui_base_url
        self.metrics = metrics
        self.runbooks = runbooks or {}  # subject (an SLO name) -> its runbook_url
        self._firing: dict[str, int] | None = None

    def on_predictions(self, conn: Connection, batch: Batch) -> None:
        """Alerts follow findings, not events."""

    def before_commit(self, conn: Connection, result: CheckpointResult) -> None:
        self._firing = None
        if not result.findings:
            return
        lookup = lambda m, v, s, w: group_findings(conn, m, v, s, w)  # noqa: E731
        observations = observe(self.settings.rules, result.findings, lookup)
        by_fp: dict[str, list[tuple[Observation, dict[str, str]]]] = {}
        for obs in observations:
            labels = alert_labels(obs.rule, obs.identity)
            by_fp.setdefault(fingerprint(labels), []).append((obs, labels))
        opened = store.load_open(conn, list(by_fp))
        incidents: list[Incident] = []
        for fp in sorted(by_fp):
            steps = sorted(by_fp[fp], key=lambda p: p[0].window_start_ms)
            incidents += self._advance(fp, opened.get(fp), steps)
        store.save(conn, incidents)
        changes = [(i.labels["alertname"], i.fingerprint, t) for i in incidents for t in i.transitions]
        for name, fp, (frm, to, window) in changes:
            log.info("alert %s fingerprint=%s %s -> %s window_start_ms=%d", name, fp, frm, to, window)
        self._firing = store.firing_counts(conn)

    def _advance(self, fp: str, current: Incident | None,
                 steps: list[tuple[Observation, dict[str, str]]]) -> list[Incident]:
        """Run the state machine over this checkpoint's observations of one fingerprint; an
        alert that resolves and holds again within them starts a new incident."""
        out = [current] if current is not None else []
        inc = current
        for obs, labels in steps:
            rule = obs.rule
            model = obs.identity.model
            suppressed = any(mw.covers(obs.window_start_ms, model, rule.name, rule.severity)
                             for mw in self.settings.maintenance)
            before = inc.state if inc is not None and inc.state.open else AlertState()
            after = step(before, obs.window_start_ms, obs.holds, rule.for_windows, suppressed)
            if after == before:
                continue
            if not before.open:  # a new incident
                inc = Incident(None, fp, rule.name, rule.severity, labels, {}, after,
                               obs.window_start_ms)
                out.append(inc)
            assert inc is not None
            inc.state, inc.changed = after, True
            if after.state == "firing" and inc.fired_window_ms is None:
                inc.fired_window_ms = obs.window_start_ms
            if after.state == "resolved":
                inc.resolved_window_ms = obs.window_start_ms
            if obs.holds:
                inc.annotations = annotations(obs, self.ui_base_url, self.settings.runbook_base_url,
                                              self.runbooks.get(obs.identity.subject),
                                              self.settings.ui_pages)
                inc.annotations["since"] = iso_time(inc.first_window_ms)
            if before.state != after.state:
                inc.transitions.append((before.state, after.state, obs.window_start_ms))
        return out

    def after_commit(self, result: CheckpointResult) -> None:
        if self.metrics is not None and self._firing is not None:
            for severity, n in self._firing.items():
                self.metrics.alerts_firing.labels(severity).set(n)
        self._firing = None
