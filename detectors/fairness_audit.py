"""The fairness audit as pure functions: per-group counts in, rates, comparisons with intervals
and disparity summaries out. Shared by the ``fairness`` detector (per window) and
``vitmon fairness report`` (over a time range), so both print the same numbers.

Definitions (Fairlearn's, so its ``MetricFrame`` and disparity functions reproduce them):

* for a class of interest ``c`` (one-vs-rest): selection rate ``P(pred = c)`` over all
  predictions of the group, TPR ``P(pred = c | label = c)``, FPR ``P(pred = c | label != c)`` over
  its labelled predictions; accuracy ``P(pred = label)`` over its labelled predictions;
* differences and ratios of a group against the dimension's reference group (configured, else
  the group with most predictions), with Newcombe hybrid-score intervals for differences, Katz log
  intervals for ratios, and a two-sided Fisher exact test (valid for the small counts of one
  window), Bonferroni-corrected over every comparison of the audit and the ``n_tests`` slices
  evaluated with it; only rates with ``min_group_size`` trials on both sides are compared;
* a *violation* is a disparity that is significantly beyond its practical threshold: its
  simultaneous interval (level ``1 - alpha / m``, ``m`` comparisons) lies entirely outside
  [``min_ratio``, 1 / ``min_ratio``] for a selection-rate ratio (the four-fifths rule) or
  outside [-``max_difference``, ``max_difference``] for an accuracy/TPR/FPR difference. A gap
  that is merely significant, or whose point estimate crosses the threshold by noise, is not one:
  on stationary traffic a per-window audit of dozens of rates must stay quiet for hundreds of
  windows;
* per dimension, over groups with at least ``min_group_size`` predictions (labelled predictions
  for label-based metrics): demographic parity difference/ratio (max - min / min / max of
  selection rates), equal opportunity difference/ratio (of TPR), equalized odds difference (the
  larger of the TPR and FPR differences) and ratio (the smaller ratio), accuracy difference/ratio.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from detectors.stats import confusion
from detectors.stats.proportions import fisher_p, katz_ratio, newcombe

Groups = Mapping[str, np.ndarray]  # group name -> confusion table


@dataclass(frozen=True, slots=True)
class AuditConfig:
    dimensions: tuple[tuple[str, ...], ...]  # attributes and intersections, as field tuples
    positive_classes: tuple[int, ...] = ()
    reference_groups: Mapping[str, str] | None = None  # dimension name -> group (or its values)
    min_group_size: int = 30
    min_ratio: float = 0.8  # four-fifths rule on selection-rate ratios
    max_difference: float = 0.05  # accuracy / TPR / FPR differences beyond this violate
    confidence: float = 0.95  # level of the reported intervals
    alpha: float = 0.01  # family-wise level of the significance decisions
    n_tests: int = 1  # slices evaluated together (Bonferroni across them too)


@dataclass(frozen=True, slots=True)
class Rate:
    x: int
    n: int

    @property
    def value(self) -> float:
        return self.x / self.n if self.n else float("nan")


@dataclass(frozen=True, slots=True)
class GroupRates:
    dimension: str
    group: str
    n_predictions: int
    n_labelled: int
    rates: Mapping[str, Rate]  # metric name ("accuracy", "tpr[3]", ...) -> rate


@dataclass(frozen=True, slots=True)
class Comparison:
    dimension: str
    group: str
    reference: str
    metric: str
    value: float
    n: int
    ref_value: float
    ref_n: int
    difference: float
    difference_ci: tuple[float, float]
    ratio: float
    ratio_ci: tuple[float, float]
    p_value: float  # raw, two-sided
    p_adjusted: float  # Bonferroni over the audit's comparisons x n_tests
    significant: bool
    simultaneous_ci: tuple[float, float]  # at level 1 - alpha/m: of the ratio for selection
    #                                       rates, of the difference otherwise
    violation: bool  # the simultaneous interval lies entirely beyond the practical threshold


@dataclass(frozen=True, slots=True)
class DimensionSummary:
    dimension: str
    reference: str
    reference_source: str  # "configured" or "largest"
    groups: tuple[str, ...]
    gaps: Mapping[str, float]  # e.g. "demographic_parity_difference[3]" -> 0.04


@dataclass(frozen=True, slots=True)
class Audit:
    groups: tuple[GroupRates, ...]
    comparisons: tuple[Comparison, ...]
    summaries: tuple[DimensionSummary, ...]
    family_size: int
    config: AuditConfig


def dimension_name(fields: Sequence[str]) -> str:
    return "×".join(fields)


def _fields_of(group: str) -> tuple[str, ...]:
    return tuple(part.partition("=")[0] for part in group.split(","))


def group_rates(dimension: str, group: str, predicted: np.ndarray | None,
                labelled: np.ndarray | None, classes: Sequence[int]) -> GroupRates:
    pred_t = confusion.empty_table() if predicted is None else predicted
    lab_t = confusion.empty_table() if labelled is None else labelled
    n_pred, n_lab = int(pred_t[:, 2].sum()), int(lab_t[:, 2].sum())
    correct = int(lab_t[lab_t[:, 0] == lab_t[:, 1], 2].sum())
    rates: dict[str, Rate] = {"accuracy": Rate(correct, n_lab)}
    for c in classes:
        b = confusion.one_vs_rest(lab_t, c)
        rates[f"selection_rate[{c}]"] = Rate(int(pred_t[pred_t[:, 1] == c, 2].sum()), n_pred)
        rates[f"tpr[{c}]"] = Rate(b.tp, b.positives)
        rates[f"fpr[{c}]"] = Rate(b.fp, b.n - b.positives)
    return GroupRates(dimension, group, n_pred, n_lab, rates)


def _size(g: GroupRates, metric: str) -> int:
    return g.n_predictions if metric.startswith("selection_rate") else g.n_labelled


def _reference(dim: str, fields: tuple[str, ...], groups: list[GroupRates],
               cfg: AuditConfig) -> tuple[GroupRates | None, str]:
    wanted = (cfg.reference_groups or {}).get(dim)
    if wanted is not None:
        name = wanted if "=" in wanted else ",".join(
            f"{f}={v}" for f, v in zip(fields, wanted.split(",")))
        for g in groups:
            if g.group == name and g.n_predictions >= cfg.min_group_size:
                return g, "configured"
    eligible = [g for g in groups if g.n_predictions >= cfg.min_group_size]
    if not eligible:
        return None, "none"
    return max(eligible, key=lambda g: (g.n_predictions, g.n_labelled, g.group)), "largest"


def _gaps(groups: list[GroupRates], cfg: AuditConfig) -> dict[str, float]:
    def spread(metric: str) -> tuple[float, float]:
        vals = [g.rates[metric].value for g in groups
                if _size(g, metric) >= cfg.min_group_size and g.rates[metric].n > 0]
        if len(vals) < 2:
            return float("nan"), float("nan")
        hi, lo = max(vals), min(vals)
        return hi - lo, (lo / hi if hi > 0 else float("nan"))

    out: dict[str, float] = {}
    out["accuracy_difference"], out["accuracy_ratio"] = spread("accuracy")
    for c in cfg.positive_classes:
        dp, dp_r = spread(f"selection_rate[{c}]")
        eo, eo_r = spread(f"tpr[{c}]")
        fp, fp_r = spread(f"fpr[{c}]")
        out[f"demographic_parity_difference[{c}]"], out[f"demographic_parity_ratio[{c}]"] = dp, dp_r
        out[f"equal_opportunity_difference[{c}]"], out[f"equal_opportunity_ratio[{c}]"] = eo, eo_r
        out[f"equalized_odds_difference[{c}]"] = max(eo, fp)
        out[f"equalized_odds_ratio[{c}]"] = min(eo_r, fp_r)
    return out


def audit(predicted: Groups, labelled: Groups, cfg: AuditConfig) -> Audit:
    """Rates per group, comparisons against each dimension's reference group, and gaps."""
    all_groups: list[GroupRates] = []
    pending: list[tuple[GroupRates, GroupRates, str]] = []
    summaries: list[DimensionSummary] = []
    for fields in cfg.dimensions:
        dim = dimension_name(fields)
        names = sorted({g for g in (*predicted, *labelled) if _fields_of(g) == tuple(fields)})
        groups = [group_rates(dim, g, predicted.get(g), labelled.get(g), cfg.positive_classes)
                  for g in names]
        all_groups += groups
        ref, source = _reference(dim, tuple(fields), groups, cfg)
        if ref is None:
            continue
        summaries.append(DimensionSummary(
            dim, ref.group, source,
            tuple(g.group for g in groups if g.n_predictions >= cfg.min_group_size),
            _gaps(groups, cfg)))
        for g in groups:
            if g is ref:
                continue
            for metric in g.rates:
                a, b = g.rates[metric], ref.rates[metric]
                if min(_size(g, metric), _size(ref, metric), a.n, b.n) >= cfg.min_group_size:
                    pending.append((g, ref, metric))
    m = len(pending) * max(1, cfg.n_tests)
    comparisons = tuple(_compare(g, ref, metric, m, cfg) for g, ref, metric in pending)
    return Audit(tuple(all_groups), comparisons, tuple(summaries), m, cfg)


def _compare(g: GroupRates, ref: GroupRates, metric: str, m: int, cfg: AuditConfig) -> Comparison:
    a, b = g.rates[metric], ref.rates[metric]
    d_lo, d_hi = newcombe(a.x, a.n, b.x, b.n, cfg.confidence)
    r_lo, r_hi = katz_ratio(a.x, a.n, b.x, b.n, cfg.confidence)
    p = float(fisher_p(a.x, a.n, b.x, b.n))
    p_adj = min(1.0, p * m)
    diff = a.value - b.value
    ratio = a.value / b.value if b.value > 0 else float("nan")
    significant = p_adj <= cfg.alpha
    simultaneous = 1.0 - cfg.alpha / m
    if metric.startswith("selection_rate"):
        lo, hi = (float(v) for v in katz_ratio(a.x, a.n, b.x, b.n, simultaneous))
        beyond = hi < cfg.min_ratio or lo > 1 / cfg.min_ratio
    else:
        lo, hi = (float(v) for v in newcombe(a.x, a.n, b.x, b.n, simultaneous))
        beyond = hi < -cfg.max_difference or lo > cfg.max_difference
    return Comparison(g.dimension, g.group, ref.group, metric, a.value, a.n, b.value, b.n, diff,
                      (float(d_lo), float(d_hi)), ratio, (float(r_lo), float(r_hi)), p, p_adj,
                      significant, (lo, hi), bool(significant and beyond))
