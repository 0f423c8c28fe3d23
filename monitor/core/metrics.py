"""Prometheus metrics (prefix ``vitmon_``, base units, ``_total`` counters).

All metrics live on an injectable registry so tests read values back without HTTP. Metrics are
updated only after a checkpoint commits, so they never count what a crash will replay.
Slice label values are capped (``max_slices`` per detector/model/version) so cardinality stays
bounded; the rest are reported under slice ``other``. A finding whose ``details`` carry an
``infra`` block (GPU memory and utilisation quantiles, cold-start rate, errors by code; the
``infra`` detector writes one) also sets the infra gauges -- the core reads the block, never a
detector's name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from monitor.contract import Finding, finite_or_none

#: Values of ``vitmon_version_health{verdict}``.
VERDICTS = ("rollback", "healthy", "insufficient_data")


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None, max_slices: int = 50) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events = Counter("vitmon_events", "Events read from Kafka, by topic and outcome "
                              "(accepted, rejected, duplicate).", ["topic", "status"], registry=r)
        self.rejected = Counter("vitmon_events_rejected", "Events rejected by validation, by "
                                "reason; each also went to the DLQ topic and rejected_events.",
                                ["reason"], registry=r)
        self.labels = Counter("vitmon_labels", "Label events stored (last label per event wins).",
                              registry=r)
        self.lag = Gauge("vitmon_consumer_lag", "Messages between the committed offset and the "
                         "log end, per partition.", ["topic", "partition"], registry=r)
        self.watermark = Gauge("vitmon_watermark_timestamp_seconds", "Highest event time seen "
                               "(windows close when it passes their end plus lateness).",
                               registry=r)
        self.stage_seconds = Histogram(
            "vitmon_processing_seconds", "Time per processing stage: decode, checkpoint, "
            "and per checkpoint its stages (slicing, observe:<detector>, encode, merge+encode, "
            "postgres:<table>, evaluate, hooks).", ["stage"], registry=r,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.checkpoints = Counter("vitmon_checkpoints", "Committed checkpoints.", registry=r)
        self.db_retries = Counter("vitmon_database_retries", "Checkpoint attempts retried "
                                  "because PostgreSQL was unreachable.", registry=r)
        self.drift_score = Gauge("vitmon_drift_score", "Latest drift score of a detector for a "
                                 "model version and slice.",
                                 ["detector", "model", "model_version", "slice"], registry=r)
        self.finding_status = Gauge("vitmon_finding_alert", "1 when the latest finding of a "
                                    "detector for a model version and slice is in alert.",
                                    ["detector", "model", "model_version", "slice"], registry=r)
        self.slo_burn_rate = Gauge("vitmon_slo_burn_rate", "Error-budget burn rate of an SLO "
                                   "over an event-time window (1 = on budget), at the last "
                                   "judged minute.", ["slo", "window"], registry=r)
        self.slo_budget = Gauge("vitmon_slo_error_budget_remaining", "Share of the SLO's error "
                                "budget left over its period (1 untouched, 0 spent, negative "
                                "overspent).", ["slo"], registry=r)
        self.slo_events = Counter("vitmon_slo_events", "Events counted by a latency or "
                                  "availability SLO, by outcome (good, bad); the source of the "
                                  "exported Prometheus rules.", ["slo", "outcome"], registry=r)
        self.alerts_firing = Gauge("vitmon_alerts_firing", "Alerts currently firing, by "
                                   "severity.", ["severity"], registry=r)
        self.alert_deliveries = Counter("vitmon_alert_deliveries", "POSTs of alerts to "
                                        "Alertmanager, by outcome (ok, error).", ["outcome"],
                                        registry=r)
        infra = ["model", "model_version", "slice"]
        self.gpu_memory = Gauge("vitmon_gpu_memory_bytes", "GPU memory reported by the model "
                                "servers (gpu_mem_mb), quantile over the latest evaluated window.",
                                [*infra, "quantile"], registry=r)
        self.gpu_util = Gauge("vitmon_gpu_utilization_ratio", "GPU utilisation reported by the "
                              "model servers (gpu_util, 0-1), quantile over the latest evaluated "
                              "window.", [*infra, "quantile"], registry=r)
        self.cold_start = Gauge("vitmon_cold_start_ratio", "Share of events served by a cold "
                                "start in the latest evaluated window.", infra, registry=r)
        self.error_ratio = Gauge("vitmon_inference_error_ratio", "Share of events that failed "
                                 "with an error code in the latest evaluated window.",
                                 [*infra, "code"], registry=r)
        self.version_health = Gauge(
            "vitmon_version_health", "Canary verdict against the model's baseline version in the "
            "latest compared window: 1 on the current verdict (rollback, healthy, "
            "insufficient_data), 0 on the others. Rollout tools fail a canary on "
            "verdict=\"rollback\" (deploy/rollouts/).", ["model", "baseline", "canary", "verdict"],
            registry=r)
        self.max_slices = max_slices
        self._slices_seen: dict[tuple[str, str, str], set[str]] = {}

    def serve(self, host: str, port: int) -> None:
        if port:
            start_http_server(port, addr=host, registry=self.registry)

    def slice_label(self, detector: str, model: str, version: str, slice_: str) -> str:
        seen = self._slices_seen.setdefault((detector, model, version), set())
        if slice_ in seen or len(seen) < self.max_slices:
            seen.add(slice_)
            return slice_
        return "other"

    def record_checkpoint(self, topic: str, accepted: int, duplicates: int,
                          rejected: Mapping[str, int], labels_topic: str, labels: int) -> None:
        self.checkpoints.inc()
        self.events.labels(topic, "accepted").inc(accepted)
        self.events.labels(topic, "duplicate").inc(duplicates)
        n_rejected = sum(rejected.values())
        self.events.labels(topic, "rejected").inc(n_rejected)
        for reason, n in rejected.items():
            self.rejected.labels(reason).inc(n)
        self.events.labels(labels_topic, "accepted").inc(labels)
        self.labels.inc(labels)

    def record_version_health(self, model: str, baseline: str, canary: str, verdict: str) -> None:
        """One canary's verdict: 1 on ``verdict``, 0 on the other :data:`VERDICTS`."""
        for v in VERDICTS:
            self.version_health.labels(model, baseline, canary, v).set(1.0 if v == verdict else 0.0)

    def record_findings(self, findings: Iterable[tuple[object, Finding]]) -> None:
        for key, f in findings:
            if f.subject:  # sub-results stay in the database; metrics carry the headline
                continue
            s = self.slice_label(f.detector, key.model, key.model_version, key.slice)
            labels = (f.detector, key.model, key.model_version, s)
            score = finite_or_none(f.score)
            if score is not None and "drift" in f.detector:
                self.drift_score.labels(*labels).set(score)
            self.finding_status.labels(*labels).set(1.0 if f.status.value == "alert" else 0.0)
            infra = f.details.get("infra") if f.details else None
            if isinstance(infra, Mapping):
                self._record_infra(labels[1:], infra)

    def _record_infra(self, labels: tuple[str, ...], infra: Mapping) -> None:
        """The infra-signal block of a finding (``details["infra"]``, see docs/detectors.md)."""
        for q, v in (infra.get("gpu_mem_mb") or {}).items():
            if v is not None:
                self.gpu_memory.labels(*labels, _quantile(q)).set(v * 1_048_576)
        for q, v in (infra.get("gpu_util") or {}).items():
            if v is not None:
                self.gpu_util.labels(*labels, _quantile(q)).set(v)
        if infra.get("cold_start_rate") is not None:
            self.cold_start.labels(*labels).set(infra["cold_start_rate"])
        n = infra.get("count") or 0
        for code, k in (infra.get("errors_by_code") or {}).items():
            if n:
                self.error_ratio.labels(*labels, code).set(k / n)


def _quantile(name: str) -> str:
    """``p95`` -> ``0.95``."""
    return str(int(name[1:]) / 100)
