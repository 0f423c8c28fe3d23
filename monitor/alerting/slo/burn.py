"""Burn rate, error budget and the multiwindow, multi-burn-rate verdict: pure functions.

The burn rate is how fast the error budget is consumed relative to the rate that would use it
up exactly at the end of the period (Google SRE Workbook, "Alerting on SLOs"):

>>> burn_rate(good=990, total=1000, objective=0.999)  # 1 % errors against a 0.1 % budget
10.0
>>> error_budget_remaining(good=99_950, total=100_000, objective=0.999)  # half the budget used
0.5
>>> round(detection_time_s(3600, 14.4, 0.999, error_ratio=1.0))  # a full outage, 1 h window
52
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from monitor.alerting.slo.spec import format_duration as _w
from monitor.contract import Finding, Severity, Status

DETECTOR = "slo_burn_rate"
DETECTOR_VERSION = 1


def burn_rate(good: float, total: float, objective: float) -> float:
    """``(bad / total) / (1 - objective)``; NaN without events."""
    if total <= 0:
        return math.nan
    return round((1.0 - good / total) / (1.0 - objective), 12)


def error_budget_remaining(good: float, total: float, objective: float) -> float:
    """Share of the period's error budget left: 1 untouched, 0 spent, negative overspent."""
    if total <= 0:
        return 1.0
    return round(1.0 - (total - good) / (total * (1.0 - objective)), 12)


def detection_time_s(long_window_s: float, threshold: float, objective: float,
                     error_ratio: float, baseline_ratio: float = 0.0) -> float:
    """Seconds after an error ratio steps from ``baseline_ratio`` to ``error_ratio`` until the
    long window's ratio reaches the tier's ``threshold x (1 - objective)`` (the Workbook's
    detection time, ``(1 - SLO) / error ratio x window x burn rate`` when the baseline is 0).
    Infinite when the step is too small to ever fire."""
    need = threshold * (1.0 - objective)
    if error_ratio <= need or error_ratio <= baseline_ratio:
        return math.inf
    return long_window_s * max(need - baseline_ratio, 0.0) / (error_ratio - baseline_ratio)


@dataclass(frozen=True, slots=True)
class Tier:
    """A burn-rate tier with its derived threshold (see :mod:`monitor.alerting.slo.spec`)."""

    name: str
    severity: str  # "page" | "ticket"
    threshold: float
    long_s: int
    short_s: int


@dataclass(frozen=True, slots=True)
class TierVerdict:
    tier: Tier
    burn_long: float
    burn_short: float
    events_long: int
    events_short: int
    judged: bool  # enough events in the long window (the minimum-events guard)
    firing: bool


@dataclass(frozen=True, slots=True)
class SloVerdict:
    tiers: tuple[TierVerdict, ...]
    budget_remaining: float
    period_good: int
    period_total: int

    @property
    def severity(self) -> Severity:
        fired = {t.tier.severity for t in self.tiers if t.firing}
        return Severity.PAGE if "page" in fired else Severity.TICKET if fired else Severity.NONE


Counts = Mapping[int, tuple[int, int]]  # window seconds -> (good, total)


def judge(tiers: Sequence[Tier], counts: Counts, period: tuple[int, int], objective: float,
          min_events: int) -> SloVerdict:
    """Each tier fires when the burn rate over both its long and its short window reaches its
    threshold and the long window holds at least ``min_events`` events.

    >>> t = Tier("page-1h", "page", 14.4, 3600, 300)
    >>> v = judge([t], {3600: (9_800, 10_000), 300: (700, 1_000)}, (99_000, 100_000), 0.99, 100)
    >>> v.tiers[0].burn_long, v.tiers[0].burn_short, v.tiers[0].firing, v.severity.value
    (2.0, 30.0, False, 'none')
    >>> judge([t], {3600: (8_000, 10_000), 300: (700, 1_000)}, (99_000, 100_000), 0.99,
    ...       100).severity.value
    'page'
    """
    out = []
    for t in tiers:
        gl, nl = counts[t.long_s]
        gs, ns = counts[t.short_s]
        bl, bs = burn_rate(gl, nl, objective), burn_rate(gs, ns, objective)
        judged = nl >= min_events
        firing = judged and ns > 0 and bl >= t.threshold and bs >= t.threshold
        out.append(TierVerdict(t, bl, bs, int(nl), int(ns), judged, firing))
    good, total = period
    return SloVerdict(tuple(out), error_budget_remaining(good, total, objective), int(good),
                      int(total))


def rolling_sums(starts: np.ndarray, values: np.ndarray, ends: np.ndarray, width_ms: int) -> np.ndarray:
    """Sum of ``values`` of the buckets starting in ``[end - width, end)`` for every ``end``.

    ``starts`` ascending. Vectorised over ``ends`` (a backfill judges thousands of minutes).

    >>> rolling_sums(np.array([0, 60_000, 120_000]), np.array([1, 2, 4]),
    ...              np.array([120_000, 180_000]), 120_000).tolist()
    [3, 6]
    """
    cs = np.concatenate([[0], np.cumsum(values, dtype=np.int64)])
    hi = np.searchsorted(starts, ends, side="left")
    lo = np.searchsorted(starts, ends - width_ms, side="left")
    return cs[hi] - cs[lo]


def to_finding(slo_name: str, sli: str, objective: float, period_days: int,
               verdict: SloVerdict) -> Finding:
    """The ``slo_burn_rate`` finding of one SLO at one evaluation minute.

    Score and threshold are those of the most severe firing tier, else of the tier closest to
    firing (the smaller of its two burn rates relative to its threshold)."""
    def closeness(tv: TierVerdict) -> float:
        worst = min(tv.burn_long, tv.burn_short)
        return -math.inf if math.isnan(worst) else worst / tv.tier.threshold

    firing = [t for t in tiers_by_severity(verdict.tiers) if t.firing]
    lead = firing[0] if firing else max(verdict.tiers, key=closeness)
    if firing:
        status = Status.ALERT
    elif not any(t.judged for t in verdict.tiers):
        status = Status.INSUFFICIENT_DATA
    else:
        status = Status.OK
    burn = {}
    for tv in verdict.tiers:
        burn[_w(tv.tier.long_s)] = _num(tv.burn_long)
        burn[_w(tv.tier.short_s)] = _num(tv.burn_short)
    details = {
        "sli": sli, "objective": objective, "period_days": period_days,
        "burn_rates": burn,
        "error_budget_remaining": verdict.budget_remaining,
        "period_events": verdict.period_total, "period_good": verdict.period_good,
        "tiers": [{"name": tv.tier.name, "severity": tv.tier.severity,
                   "threshold": tv.tier.threshold, "long_window": _w(tv.tier.long_s),
                   "short_window": _w(tv.tier.short_s), "burn_long": _num(tv.burn_long),
                   "burn_short": _num(tv.burn_short), "events_long": tv.events_long,
                   "events_short": tv.events_short, "judged": tv.judged, "firing": tv.firing}
                  for tv in verdict.tiers],
        "firing_tiers": [t.tier.name for t in firing],
    }
    score = min(lead.burn_long, lead.burn_short)
    return Finding(DETECTOR, DETECTOR_VERSION, status, score=None if math.isnan(score) else score,
                   threshold=lead.tier.threshold, severity=verdict.severity,
                   n=lead.events_long, subject=slo_name, test="multiwindow-burn-rate",
                   details=details)


def tiers_by_severity(tiers: Sequence[TierVerdict]) -> list[TierVerdict]:
    return sorted(tiers, key=lambda t: (t.tier.severity != "page", t.tier.long_s))


def _num(x: float) -> float | None:
    return None if math.isnan(x) else x
