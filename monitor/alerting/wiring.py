"""Wiring of SLOs, version comparisons and the alert engine into the checkpoint (called by
``monitor/app/service.py``): which hooks run first (they add findings), which last (it turns
every finding into alert state), and the Alertmanager sender."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from monitor.alerting.comparisons import VersionComparisonHook
from monitor.alerting.delivery import AlertSender
from monitor.alerting.engine import AlertHook
from monitor.alerting.settings import AlertmanagerSettings, AlertSettings
from monitor.alerting.slo.hook import SloHook
from monitor.alerting.slo.spec import BurnRatePolicy, SloSpec
from monitor.contract import Detector, VersionComparator
from monitor.core.checkpoint import CheckpointHook
from monitor.core.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass
class Alerting:
    first: list[CheckpointHook]  # add findings: SLO burn rates, version comparisons
    last: list[CheckpointHook]  # consumes every finding: the alert engine


def wire(detectors: Sequence[Detector], metrics: Metrics, *, alerts: AlertSettings,
         slos: Sequence[SloSpec], burn_rate: BurnRatePolicy, baselines: Mapping[str, str | None],
         alpha: float, min_samples: int, window_size_ms: int, ui_base_url: str) -> Alerting:
    """The alerting hooks: an SLO hook when SLOs are configured, a comparison hook per detector
    that compares versions (when a model has a baseline version), and the alert engine."""
    first: list[CheckpointHook] = []
    if slos:
        first.append(SloHook(slos, burn_rate, metrics))
    with_baseline = {model: v for model, v in baselines.items() if v}
    if with_baseline:
        first += [VersionComparisonHook(d, with_baseline, alpha, min_samples, window_size_ms,
                                        metrics)
                  for d in detectors if isinstance(d, VersionComparator)]
    runbooks = {s.name: s.runbook_url for s in slos if s.runbook_url}
    comparators = frozenset(d.name for d in detectors if isinstance(d, VersionComparator))
    return Alerting(first, [AlertHook(alerts, ui_base_url, metrics, runbooks=runbooks,
                                      window_ms=window_size_ms, version_causes=comparators)])


def start_sender(am: AlertmanagerSettings, engine: Engine, metrics: Metrics) -> AlertSender | None:
    """The background Alertmanager sender, or None without ``alertmanager.url``."""
    if not am.url:
        log.info("alertmanager.url not set: alerts are kept in PostgreSQL, not delivered")
        return None
    sender = AlertSender(engine, am, metrics)
    sender.start()
    log.info("alert sender started url=%s", am.url)
    return sender
