"""The SLO checkpoint hook: good/total counts per 1-minute event-time bucket, kept in PostgreSQL
inside the checkpoint transaction, and one ``slo_burn_rate`` finding per SLO per judged minute.

Procedure per checkpoint (all in the checkpoint's transaction):

1. ``on_predictions`` / ``on_labels`` fold the new events (accuracy: the label-join changes,
   +1/-1 weights, last label wins) into per-(SLO, minute) deltas in memory.
2. ``before_commit`` adds the deltas to ``slo_buckets`` (sorted keys: no deadlock between
   processes), then, for each SLO, judges every minute boundary ``T`` the watermark has passed
   by ``burn_rate.evaluation_delay_s`` since the last judged one (``slo_progress``, locked), from
   exact bucket sums over each tier's windows ending at ``T``.
3. ``after_commit`` (called by the consumer once committed) updates the Prometheus metrics.

Judging every minute boundary in event time, not once per checkpoint, makes the detection time
independent of checkpoint cadence and of time compression, and a replay after a crash judges the
same minutes with the same counts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection

from monitor.alerting.slo.burn import DETECTOR, SloVerdict, Tier, judge, rolling_sums, to_finding
from monitor.alerting.slo.spec import (
    BUCKET_S,
    BurnRatePolicy,
    SloSpec,
    format_duration,
    min_events_for,
    slice_conditions,
    tiers_of,
)
from monitor.contract import Batch, Finding
from monitor.core.checkpoint import CheckpointResult
from monitor.core.metrics import Metrics
from monitor.store import slo as slo_tables
from monitor.store.findings import upsert_findings
from monitor.store.keys import WindowKey

log = logging.getLogger(__name__)

BUCKET_MS = BUCKET_S * 1000
ALL_VERSIONS = "*"  # SLO findings cover every version of the model
MAX_STEPS = 7 * 24 * 60  # minutes judged per checkpoint at most (a week; older ones skipped)


@dataclass(frozen=True)
class CompiledSlo:
    spec: SloSpec
    tiers: tuple[Tier, ...]
    conditions: tuple[tuple[str, str], ...]
    min_events: int = 1  # per long window, scaled to the objective (spec.min_events_for)

    @classmethod
    def of(cls, spec: SloSpec, policy: BurnRatePolicy) -> CompiledSlo:
        tiers = tuple(Tier(t.name, t.severity, t.burn_rate(spec.period_days), t.long_window,
                           t.short_window) for t in tiers_of(spec, policy))
        return cls(spec, tiers, slice_conditions(spec.slice) if spec.slice else (),
                   min_events_for(spec, policy))

    @property
    def windows_s(self) -> list[int]:
        return sorted({w for t in self.tiers for w in (t.long_s, t.short_s)})

    def mask(self, attrs: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        out = np.ones(n, dtype=bool)
        for attr, value in self.conditions:
            col = attrs.get(attr)
            if col is None:
                return np.zeros(n, dtype=bool)
            out &= np.array([str(x) == value if x is not None else False for x in col], dtype=bool)
        return out

    def matches(self, attrs: Mapping[str, Any]) -> bool:
        return all(attrs.get(a) is not None and str(attrs.get(a)) == v for a, v in self.conditions)

    def good(self, batch: Batch) -> np.ndarray:
        if self.spec.sli == "latency":
            return batch.latency_ms <= float(self.spec.threshold_ms)
        return ~batch.is_error


class SloHook:
    """A :class:`~monitor.core.checkpoint.CheckpointHook`, also a ``LabelHook`` and an
    ``AfterCommitHook``."""

    def __init__(self, slos: Sequence[SloSpec], policy: BurnRatePolicy,
                 metrics: Metrics | None = None) -> None:
        self.slos = [CompiledSlo.of(s, policy) for s in slos]
        self.by_model: dict[str, list[CompiledSlo]] = {}
        for c in self.slos:
            self.by_model.setdefault(c.spec.model, []).append(c)
        self.delay_ms = policy.evaluation_delay_s * 1000
        self.metrics = metrics
        self._conn: Connection | None = None
        self._deltas: dict[tuple[str, int], list[int]] = {}
        self._latest: dict[str, SloVerdict] = {}

    # -- 1 -----------------------------------------------------------------------------------
    def _attempt(self, conn: Connection) -> None:
        """A new connection means a new checkpoint attempt (a retry after a failure): forget
        what an aborted attempt folded in, so nothing is counted twice."""
        if conn is not self._conn:
            self._conn, self._deltas, self._latest = conn, {}, {}

    def on_predictions(self, conn: Connection, batch: Batch) -> None:
        self._attempt(conn)
        if len(batch) == 0:
            return
        for c in self.by_model.get(str(batch.model[0]), ()):
            if c.spec.sli == "accuracy":
                continue
            sel = c.mask(batch.attrs, len(batch))
            buckets = batch.ts_ms[sel] // BUCKET_MS * BUCKET_MS
            good = c.good(batch)[sel]
            uniq, inv = np.unique(buckets, return_inverse=True)
            totals = np.bincount(inv, minlength=len(uniq))
            goods = np.bincount(inv, weights=good.astype(np.float64), minlength=len(uniq))
            for b, g, t in zip(uniq.tolist(), goods.tolist(), totals.tolist()):
                self._add(c.spec.name, b, int(g), int(t))

    def on_labels(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Label-join changes (+1 a new label, -1/+1 a replaced one) for accuracy SLOs. Error
        events have no prediction: availability covers them, accuracy does not count them."""
        self._attempt(conn)
        for row in rows:
            if row["is_error"] or row["pred"] < 0:
                continue
            for c in self.by_model.get(row["model"], ()):
                if c.spec.sli == "accuracy" and c.matches(row["attrs"] or {}):
                    w = int(row["weight"])
                    correct = int(row["pred"]) == int(row["label"])
                    self._add(c.spec.name, row["ts_ms"] // BUCKET_MS * BUCKET_MS,
                              w if correct else 0, w)

    def _add(self, slo: str, bucket: int, good: int, total: int) -> None:
        acc = self._deltas.setdefault((slo, int(bucket)), [0, 0])
        acc[0] += good
        acc[1] += total

    # -- 2 -----------------------------------------------------------------------------------
    def before_commit(self, conn: Connection, result: CheckpointResult) -> None:
        self._attempt(conn)
        slo_tables.add_buckets(conn, self._deltas)
        rows: list[tuple[WindowKey, int, Finding]] = []
        for c in self.slos:
            rows += self._judge(conn, c, result.watermark_ms)
        upsert_findings(conn, rows)
        result.findings.extend((k, f) for k, _, f in rows)

    def _judge(self, conn: Connection, c: CompiledSlo, watermark_ms: int
               ) -> list[tuple[WindowKey, int, Finding]]:
        name = c.spec.name
        target = (watermark_ms - self.delay_ms) // BUCKET_MS * BUCKET_MS
        start = slo_tables.judged_to(conn, name)
        if start is None or target <= start:
            return []
        steps = (target - start) // BUCKET_MS
        if steps > MAX_STEPS:  # skipped before the arange: a years-long jump is no allocation
            log.warning("slo %s: judging only the last %d of %d minutes", name, MAX_STEPS, steps)
        first = max(start + BUCKET_MS, target - (MAX_STEPS - 1) * BUCKET_MS)
        ends = np.arange(first, target + 1, BUCKET_MS, dtype=np.int64)
        period_ms = c.spec.period_days * 86_400_000
        span = max(period_ms, max(c.windows_s) * 1000)
        starts, good, total = slo_tables.buckets(conn, name, int(ends[0]) - span, int(ends[-1]))
        sums = {w: (rolling_sums(starts, good, ends, w * 1000), rolling_sums(starts, total, ends, w * 1000))
                for w in c.windows_s}
        pg, pt = rolling_sums(starts, good, ends, period_ms), rolling_sums(starts, total, ends, period_ms)
        out = []
        verdict = None
        for i, end in enumerate(ends.tolist()):
            counts = {w: (int(g[i]), int(t[i])) for w, (g, t) in sums.items()}
            verdict = judge(c.tiers, counts, (int(pg[i]), int(pt[i])), c.spec.objective,
                            c.min_events)
            finding = to_finding(name, c.spec.sli, c.spec.objective, c.spec.period_days, verdict)
            key = WindowKey(DETECTOR, c.spec.model, ALL_VERSIONS, c.spec.slice_name, end - BUCKET_MS)
            out.append((key, end, finding))
        self._latest[name] = verdict
        slo_tables.set_judged_to(conn, name, int(ends[-1]))
        if int(ends[-1]) // 3_600_000 != start // 3_600_000:  # hourly: drop buckets nobody reads
            slo_tables.drop_buckets_before(conn, name, int(ends[-1]) - span - 86_400_000)
        return out

    # -- 3 -----------------------------------------------------------------------------------
    def after_commit(self, result: CheckpointResult) -> None:
        if self.metrics is not None:
            kinds = {c.spec.name: c.spec.sli for c in self.slos}
            for (slo, _), (g, t) in self._deltas.items():
                if kinds[slo] != "accuracy":  # accuracy deltas can be negative (retractions)
                    self.metrics.slo_events.labels(slo, "good").inc(g)
                    self.metrics.slo_events.labels(slo, "bad").inc(t - g)
            for slo, verdict in self._latest.items():
                record_slo(self.metrics, slo, verdict)
        self._conn, self._deltas, self._latest = None, {}, {}


def record_slo(metrics: Metrics, slo: str, verdict: SloVerdict) -> None:
    """Burn rate per window and the budget left of one SLO at its last judged minute."""
    for tv in verdict.tiers:
        for seconds, value in ((tv.tier.long_s, tv.burn_long), (tv.tier.short_s, tv.burn_short)):
            metrics.slo_burn_rate.labels(slo, format_duration(seconds)).set(value)
    metrics.slo_budget.labels(slo).set(verdict.budget_remaining)
