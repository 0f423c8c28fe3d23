"""Version health: is a canary version significantly worse than the baseline version?

The state of one (model, version, slice, window) holds what the comparison needs: counts and
errors, a latency histogram, a confidence histogram (the mean confidence is the label-free
accuracy estimate) and, from late labels, realised accuracy counts (additive, so a replaced
label retracts with weight -1). ``evaluate`` describes one version; the comparison of two
versions is :func:`compare`, the detector's ``compare_versions`` ability
(:class:`monitor.contract.VersionComparator`), called by the alerting layer
(``monitor/alerting/comparisons.py``), which reads both versions' states for the same slice and
window -- ``evaluate`` only ever sees one key.

Tests (one-sided, canary worse), Holm-corrected at ``look_alpha(alpha, look) / n_slices``:

==================  ==================================  ==========================
metric              test                                minimum effect to matter
==================  ==================================  ==========================
error rate          Fisher exact (hypergeometric)       +0.5 points
latency             Mann-Whitney U (binned, ties)       median x1.2
confidence          Mann-Whitney U (binned, ties)       mean -0.02
realised accuracy   Fisher exact (hypergeometric)       -2 points
==================  ==================================  ==========================

Why exact: errors are rare, and the pooled z-test is badly anti-conservative there (3/400 vs
2/2000 errors: z gives p = 0.0046, Fisher 0.035). Why ``look_alpha``: a comparison is re-run
whenever either version's window is re-evaluated (late events, label batches), so each look
spends a share of ``alpha`` (:func:`detectors._verdict.look_alpha`: 0.9 alpha at the first,
0.1 alpha / 2**k at look k) and the false "rollback recommended" rate per slice-window stays at
most ``alpha / n_slices`` over all looks.

A significant and material regression of error rate or accuracy is ``rollback recommended``
with severity page; of latency or confidence only, severity ticket.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from scipy import stats

from detectors._verdict import look_alpha
from detectors.stats.sequential import fisher_greater
from detectors.traffic import _EDGES, group_bincount, latency_quantile
from monitor.contract import DataclassStateCodec, Finding, Severity, Status

if TYPE_CHECKING:  # annotations only (postponed by __future__ annotations)
    from monitor.contract import Batch, EvalContext, LabelledBatch, Reference

_CONF_BINS = 50


@dataclass(frozen=True, slots=True)
class HealthState:
    n: int
    n_error: int
    latency_hist: np.ndarray  # int64, bins of detectors.traffic._EDGES
    conf_hist: np.ndarray  # int64, 50 equal bins over [0, 1]
    n_conf: int
    conf_sum: float
    labelled: int  # successful predictions with a label (signed weights summed)
    correct: int

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, HealthState) and (self.n, self.n_error, self.n_conf,
                self.labelled, self.correct) == (other.n, other.n_error, other.n_conf,
                other.labelled, other.correct)
                and math.isclose(self.conf_sum, other.conf_sum, rel_tol=1e-9, abs_tol=1e-9)
                and np.array_equal(self.latency_hist, other.latency_hist)
                and np.array_equal(self.conf_hist, other.conf_hist))


@dataclass(frozen=True, slots=True)
class Comparison:
    metric: str
    canary: float
    baseline: float
    effect: float  # canary - baseline (latency: median ratio)
    p_value: float
    material: bool  # the effect is at least the minimum that matters


def mann_whitney_binned(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """z and one-sided p (x stochastically larger than y) from counts in the same ordered bins.

    >>> z, p = mann_whitney_binned(np.array([0, 10, 90]), np.array([90, 10, 0]))
    >>> round(z, 1), p < 1e-20
    (13.4, True)
    """
    nx, ny = int(x.sum()), int(y.sum())
    if nx == 0 or ny == 0:
        return 0.0, 1.0
    below = np.concatenate([[0], np.cumsum(y)[:-1]])
    u = float(np.sum(x * (below + 0.5 * y)))
    n = nx + ny
    t = (x + y).astype(np.float64)
    var = nx * ny / 12.0 * ((n + 1) - float(np.sum(t ** 3 - t)) / (n * (n - 1)))
    if var <= 0:
        return 0.0, 1.0
    z = (u - nx * ny / 2.0 - 0.5) / math.sqrt(var)
    return z, float(stats.norm.sf(z))


def exceeds(k1: int, n1: int, k2: int, n2: int) -> float:
    """One-sided p that proportion 1 exceeds proportion 2 (Fisher exact).

    >>> round(exceeds(30, 1000, 10, 1000), 5), round(exceeds(3, 400, 2, 2000), 3)
    (0.001, 0.035)
    """
    return float(fisher_greater(k1, n1, k2, n2))


def holm(p_values: list[float]) -> list[float]:
    """Holm step-down adjusted p-values.

    >>> holm([0.01, 0.04, 0.03])
    [0.03, 0.06, 0.06]
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = round(running, 12)
    return adjusted


class VersionHealth(DataclassStateCodec):
    """Per-version health figures of one window, and the canary-vs-baseline comparison.

    Example
    -------
    >>> from monitor.testing import make_context, synthetic_batch
    >>> det = VersionHealth()
    >>> base = det.observe(det.empty(), synthetic_batch(n=2000, seed=0, error_rate=0.001))
    >>> canary = det.observe(det.empty(), synthetic_batch(n=400, seed=1, error_rate=0.08))
    >>> f = compare(det, canary, base, "1", alpha=0.01, n_tests=1, min_samples=30)
    >>> f.status.value, f.severity.value, f.details["verdict"]
    ('alert', 'page', 'rollback recommended')
    >>> compare(det, det.observe(det.empty(), synthetic_batch(n=400, seed=2, error_rate=0.001)), base,
    ...         "1", alpha=0.01, n_tests=1, min_samples=30).status.value
    'ok'
    """

    name: ClassVar[str] = "version_health"
    version: ClassVar[int] = 2
    state_type: ClassVar[type] = HealthState
    wide_columns: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, min_error_increase: float = 0.005, min_latency_ratio: float = 1.2,
                 min_confidence_drop: float = 0.02, min_accuracy_drop: float = 0.02) -> None:
        self.min_error_increase = min_error_increase
        self.min_latency_ratio = min_latency_ratio
        self.min_confidence_drop = min_confidence_drop
        self.min_accuracy_drop = min_accuracy_drop

    def empty(self) -> HealthState:
        return HealthState(0, 0, np.zeros(len(_EDGES) + 1, dtype=np.int64),
                           np.zeros(_CONF_BINS, dtype=np.int64), 0, 0.0, 0, 0)

    def observe(self, state: HealthState, batch: Batch) -> HealthState:
        return self.observe_groups([state], batch, [np.arange(len(batch))], None)[0]

    def observe_groups(self, states: Sequence[HealthState], batch: Batch,
                       groups: Sequence[np.ndarray],
                       reference: Reference | None = None) -> list[HealthState]:
        """Every group at once: one ``bincount`` over (group, bin) per histogram."""
        lat = group_bincount(np.searchsorted(_EDGES, batch.latency_ms, side="right"), groups,
                             len(_EDGES) + 1)
        errors = group_bincount(batch.is_error.astype(np.int64), groups, 2)[:, 1]
        conf = batch.confidence.astype(np.float64)
        known = ~np.isnan(conf)
        cbin = np.where(known, np.clip((np.nan_to_num(conf) * _CONF_BINS).astype(np.int64), 0,
                                       _CONF_BINS - 1), _CONF_BINS)  # _CONF_BINS: no confidence
        ch = group_bincount(cbin, groups, _CONF_BINS + 1)
        out = []
        for s, g, e, h, c in zip(states, groups, errors.tolist(), lat, ch, strict=True):
            values = conf[g][known[g]]
            out.append(HealthState(s.n + len(g), s.n_error + int(e), s.latency_hist + h,
                                   s.conf_hist + c[:_CONF_BINS], s.n_conf + len(values),
                                   s.conf_sum + float(values.sum()), s.labelled, s.correct))
        return out

    def observe_labels(self, state: HealthState, labelled: LabelledBatch) -> HealthState:
        ok = ~labelled.is_error & (labelled.pred >= 0)
        w = labelled.weight[ok]
        hit = (labelled.pred[ok] == labelled.label[ok])
        return HealthState(state.n, state.n_error, state.latency_hist, state.conf_hist,
                           state.n_conf, state.conf_sum, state.labelled + int(w.sum()),
                           state.correct + int(w[hit].sum()))

    def merge(self, a: HealthState, b: HealthState) -> HealthState:
        return HealthState(a.n + b.n, a.n_error + b.n_error, a.latency_hist + b.latency_hist,
                           a.conf_hist + b.conf_hist, a.n_conf + b.n_conf,
                           a.conf_sum + b.conf_sum, a.labelled + b.labelled, a.correct + b.correct)

    def compare_versions(self, candidate: HealthState, baseline: HealthState,
                         baseline_version: str, context: EvalContext) -> Finding:
        """The canary-vs-baseline finding (see :func:`compare`)."""
        return compare(self, candidate, baseline, baseline_version, context.alpha,
                       context.n_tests, context.min_samples, context.look)

    def evaluate(self, state: HealthState, context: EvalContext) -> tuple[Finding, ...]:
        """Describes one version (the comparison needs two: see :func:`compare`)."""
        if state.n < context.min_samples:
            return (Finding.insufficient(self, state.n, context.min_samples),)
        return (Finding(self.name, self.version, Status.OK, n=state.n, test="summary",
                        details=summary(state)),)


def summary(s: HealthState) -> dict[str, float | int | None]:
    return {"count": s.n, "error_rate": s.n_error / s.n if s.n else None,
            "p50_latency_ms": latency_quantile(s.latency_hist, 0.5) if s.n else None,
            "mean_confidence": s.conf_sum / s.n_conf if s.n_conf else None,
            "labelled": s.labelled, "accuracy": s.correct / s.labelled if s.labelled else None}


def compare(det: VersionHealth, canary: HealthState, baseline: HealthState, baseline_version: str,
            alpha: float, n_tests: int, min_samples: int, look: int = 0) -> Finding:
    """The canary-vs-baseline finding for one slice and window (subject ``vs <baseline>``);
    ``look`` counts the earlier comparisons of this window (alpha spending)."""
    subject = f"vs {baseline_version}"
    if canary.n < min_samples or baseline.n < min_samples:
        return Finding.insufficient(det, min(canary.n, baseline.n), min_samples, subject)
    tests = _tests(det, canary, baseline, min_samples)
    adjusted = holm([t.p_value for t in tests])
    level = look_alpha(alpha, look) / max(n_tests, 1)
    worse = [t for t, p in zip(tests, adjusted) if p <= level and t.material]
    severe = [t for t in worse if t.metric in ("error_rate", "accuracy")]
    lead_i = min(range(len(tests)), key=lambda i: adjusted[i])
    lead = next((t for t in tests if t in worse), tests[lead_i])
    details = {
        "verdict": "rollback recommended" if worse else "no significant regression",
        "baseline_version": baseline_version, "worse": [t.metric for t in worse],
        "canary": summary(canary), "baseline": summary(baseline), "alpha": level,
        "look": look,
        "tests": [{"metric": t.metric, "canary": t.canary, "baseline": t.baseline,
                   "effect": t.effect, "p_value": t.p_value, "p_adjusted": p,
                   "material": t.material, "worse": t in worse} for t, p in zip(tests, adjusted)],
    }
    return Finding(det.name, det.version, Status.ALERT if worse else Status.OK,
                   score=lead.effect, threshold=_threshold(det, lead.metric),
                   p_value=adjusted[tests.index(lead)],
                   severity=Severity.PAGE if severe else Severity.TICKET if worse else Severity.NONE,
                   n=canary.n, subject=subject, test="holm(fisher-exact, mann-whitney)",
                   details=details)


def _tests(det: VersionHealth, c: HealthState, b: HealthState, min_samples: int) -> list[Comparison]:
    ce, be = c.n_error / c.n, b.n_error / b.n
    out = [Comparison("error_rate", ce, be, ce - be, exceeds(c.n_error, c.n, b.n_error, b.n),
                      ce - be >= det.min_error_increase)]
    cm, bm = latency_quantile(c.latency_hist, 0.5), latency_quantile(b.latency_hist, 0.5)
    out.append(Comparison("latency_p50_ms", cm, bm, cm / bm if bm > 0 else math.inf,
                          mann_whitney_binned(c.latency_hist, b.latency_hist)[1],
                          bm > 0 and cm / bm >= det.min_latency_ratio))
    if c.n_conf >= min_samples and b.n_conf >= min_samples:
        cc, bc = c.conf_sum / c.n_conf, b.conf_sum / b.n_conf
        out.append(Comparison("mean_confidence", cc, bc, cc - bc,
                              mann_whitney_binned(b.conf_hist, c.conf_hist)[1],
                              bc - cc >= det.min_confidence_drop))
    if c.labelled >= min_samples and b.labelled >= min_samples:
        ca, ba = c.correct / c.labelled, b.correct / b.labelled
        out.append(Comparison("accuracy", ca, ba, ca - ba,
                              exceeds(b.correct, b.labelled, c.correct, c.labelled),
                              ba - ca >= det.min_accuracy_drop))
    return out


def _threshold(det: VersionHealth, metric: str) -> float:
    return {"error_rate": det.min_error_increase, "latency_p50_ms": det.min_latency_ratio,
            "mean_confidence": -det.min_confidence_drop,
            "accuracy": -det.min_accuracy_drop}[metric]
