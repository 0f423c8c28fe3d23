"""Wiring of SLOs, version health and the alert engine into the checkpoint (used by
``monitor/app.py``): which hooks run first (they add findings), which last (it turns every
finding into alert state), what runs after the commit (metrics), and the Alertmanager sender."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from monitor.alerts.engine import AlertHook
from monitor.config import Settings
from monitor.contract import Detector

log = logging.getLogger(__name__)


@dataclass
class Alerting:
    first: list[Any]  # add findings: SLO burn rates, version-health comparisons
    last: list[Any]  # consumes every finding: the alert engine

    def after_commit(self, metrics: Any) -> Callable[[Any], None]:
        hooks = [h for h in (*self.first, *self.last) if hasattr(h, "after_commit")]
        for h in hooks:
            h.metrics = metrics

        def run(result: Any) -> None:
            for h in hooks:
                h.after_commit(result)
        return run


def wire(settings: Settings, detectors: Sequence[Detector]) -> Alerting:
    first: list[Any] = []
    if settings.slos:
        from monitor.slo.hook import SloHook

        first.append(SloHook(settings.slos, settings.burn_rate))
    baselines = {name: m.baseline_version for name, m in settings.models.items()
                 if m.baseline_version}
    health = next((d for d in detectors if d.name == "version_health"), None)
    if health is not None and baselines:
        from monitor.version_health import VersionHealthHook

        first.append(VersionHealthHook(health, baselines, settings.detectors.alpha,
                                       settings.slices.min_samples, settings.windows.size_s * 1000))
    runbooks = {s.name: s.runbook_url for s in settings.slos if s.runbook_url}
    return Alerting(first, [AlertHook(settings.alerts, settings.ui.base_url, runbooks=runbooks)])


def start_sender(settings: Settings, engine: Engine, metrics: Any) -> Any:
    """The background Alertmanager sender, or None without ``alertmanager.url``."""
    if not settings.alertmanager.url:
        log.info("alertmanager.url not set: alerts are kept in PostgreSQL, not delivered")
        return None
    from monitor.alerts.delivery import AlertSender

    sender = AlertSender(engine, settings.alertmanager, metrics)
    sender.start()
    log.info("alert sender started url=%s", settings.alertmanager.url)
    return sender
