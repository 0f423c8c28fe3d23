"""The alert engine as a checkpoint hook: every finding of the checkpoint (window detectors, SLO
burn rates, version health) goes through the rules, slice containment (:mod:`.explain`) and the
state machine, alerts are grouped into incidents (:mod:`.incidents`), and every change is
written to ``alerts``/``alert_transitions``/``incidents`` in the checkpoint's own transaction.
Alert state is therefore exactly-once like every other result: a crash before the commit
replays the same findings into the same transitions. Delivery to Alertmanager happens elsewhere
(:mod:`monitor.alerting.delivery` reads the table), so the consume loop never waits on it.

Must run after the hooks that add findings (the SLO and version-health hooks).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import Connection

from monitor.alerting import incidents
from monitor.alerting.explain import carriers, contains_by_counts, contains_by_name
from monitor.alerting.rules import (
    Identity,
    Observation,
    alert_labels,
    annotations,
    dashboard_url,
    fingerprint,
    iso_time,
    observe,
)
from monitor.alerting.settings import AlertSettings
from monitor.alerting.slo.hook import ALL_VERSIONS, BUCKET_MS
from monitor.alerting.slo.hook import DETECTOR as SLO_DETECTOR
from monitor.alerting.state import AlertState, step
from monitor.contract import Batch
from monitor.core.checkpoint import CheckpointResult
from monitor.core.metrics import Metrics
from monitor.store import alerts as store
from monitor.store.alerts import Alert
from monitor.store.findings import group_findings
from monitor.store.incidents import slice_counts

log = logging.getLogger(__name__)
Explained = dict[tuple[str, Identity, int], Identity]  # (rule, identity, window) -> carrier


class AlertHook:
    """A :class:`~monitor.core.checkpoint.CheckpointHook` and ``AfterCommitHook``.
    ``window_ms``: the window length of window detectors (adjacency for ``for``)."""

    def __init__(self, settings: AlertSettings, ui_base_url: str, metrics: Metrics | None = None,
                 runbooks: dict[str, str] | None = None, window_ms: int | None = None,
                 version_causes: frozenset[str] = frozenset()) -> None:
        self.settings = settings
        self.ui_base_url = ui_base_url
        self.metrics = metrics
        self.runbooks = runbooks or {}  # subject (an SLO name) -> its runbook_url
        self.window_ms = window_ms
        #: detectors whose alerts concern a whole version (canary comparisons): one incident
        self.version_causes = version_causes
        self._firing: dict[str, int] | None = None

    def on_predictions(self, conn: Connection, batch: Batch) -> None:
        """Alerts follow findings, not events."""

    def before_commit(self, conn: Connection, result: CheckpointResult) -> None:
        self._firing = None
        if not result.findings:
            return
        store.lock_engine(conn)  # another process's checkpoint may be opening the same alerts
        lookup = lambda m, v, s, w: group_findings(conn, m, v, s, w)  # noqa: E731
        observations = observe(self.settings.rules, result.findings, lookup)
        explained = self._explain(conn, observations)
        by_fp: dict[str, list[tuple[Observation, dict[str, str]]]] = {}
        for obs in observations:
            labels = alert_labels(obs.rule, obs.identity)
            by_fp.setdefault(fingerprint(labels), []).append((obs, labels))
        opened = store.load_open(conn, list(by_fp))
        alerts: list[Alert] = []
        last_window: dict[str, int] = {}
        for fp in sorted(by_fp):
            steps = sorted(by_fp[fp], key=lambda p: p[0].window_start_ms)
            alerts += self._advance(fp, opened.get(fp), steps, explained)
            last_window[fp] = steps[-1][0].window_start_ms
        changes = [(i.labels["alertname"], i.fingerprint, t) for i in alerts for t in i.transitions]
        store.save(conn, alerts)
        self._link(alerts, explained, by_fp)
        touched = incidents.assign(conn, alerts, {a.id: last_window[a.fingerprint]
                                                  for a in alerts if a.id is not None},
                                   self.version_causes)
        for a in alerts:
            if a.incident_id is not None:
                lab = a.labels
                ident = Identity(lab["model"], lab["model_version"], lab["slice"],
                                 lab["detector"], lab.get("subject", ""))
                url = dashboard_url(self.ui_base_url, ident, self.settings.ui_pages, a.incident_id)
                if a.annotations.get("dashboard_url") != url:
                    a.annotations["dashboard_url"], a.changed = url, True
        store.save(conn, alerts)
        closed = incidents.close_finished(conn, alerts)
        for name, fp, (frm, to, window) in changes:
            log.info("alert %s fingerprint=%s %s -> %s window_start_ms=%d", name, fp, frm, to, window)
        for inc in touched:
            log.info("incident %s model=%s slice=%s detectors=%s explained=%d", inc.id,
                     inc.model, inc.slice, ",".join(inc.detectors), len(inc.explained))
        for inc in closed:
            log.info("incident %s resolved window_start_ms=%s", inc.id, inc.resolved_window_ms)
        self._firing = store.firing_counts(conn)

    def _explain(self, conn: Connection, observations: Sequence[Observation]) -> Explained:
        """Holding observations of one rule, model, version, detector, subject and window whose
        slice contains another holding slice's: which slice carries them."""
        groups: dict[tuple, list[Observation]] = {}
        for obs in observations:
            if obs.holds is True:
                i = obs.identity
                groups.setdefault((obs.rule.name, i.model, i.model_version, i.detector, i.subject,
                                   obs.window_start_ms), []).append(obs)
        out: Explained = {}
        counts: dict[tuple[str, str, int], tuple[dict, dict]] = {}
        share = self.settings.explain_share
        for (rule, model, version, _, _, window), group in sorted(groups.items()):
            names = sorted({o.identity.slice for o in group})
            if len(names) < 2:
                continue
            n: dict[str, int] = {}
            both: dict[tuple[str, str], int] = {}
            if version != ALL_VERSIONS:
                key = (model, version, window)
                if key not in counts:
                    wanted = sorted({o.identity.slice for (r, m, v, _, _, w), g in groups.items()
                                     if (m, v, w) == key for o in g})
                    counts[key] = slice_counts(conn, model, version, window, wanted)
                n, both = counts[key]
            def contains(big: str, small: str, n: dict = n, both: dict = both) -> bool:
                return contains_by_name(big, small) or (
                    bool(n) and contains_by_counts(big, small, n, both, share))
            by_slice = {o.identity.slice: o for o in group}
            for big, small in carriers(names, contains, n, self.settings.broad_share,
                                       both).items():
                out[(rule, by_slice[big].identity, window)] = by_slice[small].identity
        return out

    def _window_length(self, detector: str) -> int | None:
        lengths = [BUCKET_MS if d == SLO_DETECTOR else self.window_ms for d in detector.split("+")]
        return None if None in lengths else min(lengths)  # type: ignore[type-var]

    def _advance(self, fp: str, current: Alert | None,
                 steps: list[tuple[Observation, dict[str, str]]],
                 explained: Explained) -> list[Alert]:
        """Run the state machine over this checkpoint's observations of one fingerprint; an
        alert that resolves and holds again within them starts a new occurrence (row)."""
        out = [current] if current is not None else []
        inc = current
        for obs, labels in steps:
            rule, ident = obs.rule, obs.identity
            carrier = explained.get((rule.name, ident, obs.window_start_ms))
            quiet = ("suppressed" if any(mw.covers(obs.window_start_ms, ident.model, rule.name,
                                                   rule.severity)
                                         for mw in self.settings.maintenance)
                     else "explained" if carrier is not None else None)
            before = inc.state if inc is not None and inc.state.open else AlertState()
            after = step(before, obs.window_start_ms, obs.holds, rule.for_windows, quiet,
                         self._window_length(ident.detector))
            if after == before:
                continue
            if not before.open:  # a new occurrence
                inc = Alert(None, fp, rule.name, rule.severity, labels, {}, after,
                            obs.window_start_ms)
                out.append(inc)
            assert inc is not None
            inc.state, inc.changed = after, True
            if after.state == "firing" and inc.fired_window_ms is None:
                inc.fired_window_ms = obs.window_start_ms
            if after.state == "resolved":
                inc.resolved_window_ms = obs.window_start_ms
            if obs.holds is True:
                inc.annotations = annotations(obs, self.ui_base_url, self.settings.runbook_base_url,
                                              self.runbooks.get(ident.subject),
                                              self.settings.ui_pages)
                inc.annotations["since"] = iso_time(inc.first_window_ms)
                inc.explained_by = carrier.slice if carrier is not None else None
                if carrier is not None:
                    inc.annotations["explained_by"] = carrier.slice
            if before.state != after.state:
                inc.transitions.append((before.state, after.state, obs.window_start_ms))
        return out

    @staticmethod
    def _link(alerts: Sequence[Alert], explained: Explained,
              by_fp: dict[str, list[tuple[Observation, dict[str, str]]]]) -> None:
        """Explained alerts get their carrier's alert id; carriers list what they explain."""
        by_fp_alert = {a.fingerprint: a for a in alerts if a.state.open}
        fp_of = {(obs.rule.name, obs.identity): fp for fp, steps in by_fp.items()
                 for obs, _ in steps}
        explains: dict[str, list[str]] = {}
        for (rule, ident, _), carrier in sorted(explained.items(), key=lambda kv: kv[0][2]):
            a = by_fp_alert.get(fp_of.get((rule, ident), ""))
            c = by_fp_alert.get(fp_of.get((rule, carrier), ""))
            if a is None or c is None or a.explained_by != carrier.slice:
                continue
            if a.explained_by_alert_id != c.id:
                a.explained_by_alert_id, a.changed = c.id, True
            if ident.slice not in explains.setdefault(c.fingerprint, []):
                explains[c.fingerprint].append(ident.slice)
        for fp, slices in explains.items():
            c = by_fp_alert[fp]
            text = ", ".join(sorted(slices))
            if c.annotations.get("explains") != text:
                c.annotations["explains"], c.changed = text, True

    def after_commit(self, result: CheckpointResult) -> None:
        if self.metrics is not None and self._firing is not None:
            for severity, n in self._firing.items():
                self.metrics.alerts_firing.labels(severity).set(n)
        self._firing = None
