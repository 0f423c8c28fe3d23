"""Fairness per group of protected attributes (and their intersections), per slice and window.

The state keeps, per group, the predicted classes of all its predictions and the (label, pred)
pairs of its labelled ones: sparse additive counts (see :mod:`detectors.stats.confusion`), so
late labels, retractions and merges are exact. :mod:`detectors.fairness_audit` turns them into
rates, comparisons and gaps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from detectors import fairness_report
from detectors._verdict import jsonable, look_alpha
from detectors.fairness_audit import Audit, AuditConfig, Comparison, audit
from detectors.stats import confusion
from monitor.contract import (
    Batch,
    ConfigError,
    DataclassStateCodec,
    EvalContext,
    Finding,
    LabelledBatch,
    Reference,
    ReportScope,
    Severity,
    Status,
)
from slices.names import group_labels

Tables = Mapping[str, np.ndarray]


@dataclass(frozen=True, slots=True)
class FairnessState:
    """Group name (``group=B``, ``group=B,region=eu``) -> confusion table. In ``predicted`` the
    label column is 0: only the predicted class of each prediction counts."""

    predicted: Tables = field(default_factory=dict)
    labelled: Tables = field(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        def same(a: Tables, b: Tables) -> bool:
            return list(a) == list(b) and all(np.array_equal(a[k], b[k]) for k in a)
        return (isinstance(other, FairnessState) and same(self.predicted, other.predicted)
                and same(self.labelled, other.labelled))


def _merge_tables(a: Tables, b: Tables) -> dict[str, np.ndarray]:
    out = {}
    for k in sorted({*a, *b}):
        t = confusion.merge(a.get(k, confusion.empty_table()), b.get(k, confusion.empty_table()))
        if len(t):  # a group whose labels were all retracted disappears: canonical form
            out[k] = t
    return out


@dataclass(frozen=True)
class Fairness(DataclassStateCodec):
    """Per protected group: selection rate, accuracy, TPR, FPR and disparities with intervals.

    Per key: one finding per compared group (subject = the group, e.g. ``group=B``) and a main
    finding (subject ``""``) with the per-dimension gaps (demographic parity, equal opportunity,
    equalized odds, accuracy). A group ``alert``s (severity ticket; fairness never pages) when a
    disparity is significantly beyond its practical threshold: its Bonferroni-simultaneous
    interval (over all comparisons and ``n_tests`` slices, at the share of ``alpha`` this look
    may spend: :func:`detectors._verdict.look_alpha`, since every label batch re-evaluates the
    window; look 0, the 0.9 share, is taken once the window's labels have settled:
    :class:`monitor.contract.LabelDecision`) lies entirely outside
    [``min_ratio``, 1/``min_ratio``] for a selection-rate ratio (the four-fifths rule) or beyond
    ``max_difference`` for an accuracy/TPR/FPR difference; significant (Fisher exact, corrected)
    but not surely beyond, it ``warn``s. Groups with fewer than ``min_group_size`` predictions
    are ``insufficient_data``. Parameters come from ``detectors.params.fairness`` (the older
    top-level ``fairness`` section still works). The audit of a range renders itself
    (:meth:`render_report`: ``vitmon fairness report``, HTML or CSV).

    Example
    -------
    Group B is right 70 % of the time, group A 90 %:

    >>> from detectors.testing import context, make_batch
    >>> from monitor.contract import LabelledBatch
    >>> rng = np.random.default_rng(0)
    >>> n = 2000; grp = rng.choice(np.array(["A", "B"], dtype=object), n, p=[0.7, 0.3])
    >>> y = rng.integers(0, 4, n)
    >>> p = np.where(rng.random(n) < np.where(grp == "B", 0.7, 0.9), y, (y + 1) % 4)
    >>> det = Fairness(attributes=("group",), positive_classes=(1,))
    >>> s = det.observe(det.empty(), make_batch(n, pred=p, attrs={"group": grp}))
    >>> s = det.observe_labels(s, LabelledBatch(np.arange(n).astype(object), np.zeros(n, np.int64),
    ...     p.astype(np.int32), y, np.ones(n, np.int64), np.full(n, np.nan, np.float32),
    ...     np.zeros(n, bool), {"group": grp}))
    >>> main, b = det.evaluate(s, context(None))
    >>> b.subject, b.status.value, b.details["comparisons"][0]["metric"]
    ('group=B', 'alert', 'accuracy')
    >>> [round(v, 3) for v in b.details["comparisons"][0]["difference_ci"]]
    [-0.238, -0.159]
    """

    name: ClassVar[str] = "fairness"
    version: ClassVar[int] = 2
    state_type: ClassVar[type] = FairnessState
    wide_columns: ClassVar[frozenset[str]] = frozenset({"attrs"})
    report_formats: ClassVar[tuple[str, ...]] = ("html", "csv")
    #: Accuracy, TPR and FPR rest on labels: the decisive look waits for them to settle
    #: (:class:`monitor.contract.LabelDecision`).
    label_decision: ClassVar[bool] = True

    attributes: tuple[str, ...] = ()
    intersections: tuple[tuple[str, ...], ...] = ()
    reference_groups: Mapping[str, str] = field(default_factory=dict)
    positive_classes: tuple[int, ...] = ()
    min_group_size: int = 30
    min_ratio: float = 0.8
    max_difference: float = 0.05
    confidence: float = 0.95

    def __post_init__(self) -> None:  # YAML gives lists; tuples keep the config hashable
        object.__setattr__(self, "attributes", tuple(self.attributes))
        object.__setattr__(self, "intersections", tuple(tuple(i) for i in self.intersections))
        object.__setattr__(self, "positive_classes", tuple(int(c) for c in self.positive_classes))
        object.__setattr__(self, "min_group_size", int(self.min_group_size))  # env: text
        for name in ("min_ratio", "max_difference", "confidence"):
            object.__setattr__(self, name, float(getattr(self, name)))
        for name, ok in (("min_group_size", self.min_group_size >= 1),
                         ("min_ratio", 0 < self.min_ratio <= 1),
                         ("max_difference", 0 <= self.max_difference <= 1),
                         ("confidence", 0 < self.confidence < 1)):
            if not ok:  # the service reports it as a bad setting detectors.params.fairness
                raise ValueError(f"{name}={getattr(self, name)!r} is out of range")

    @property
    def dimensions(self) -> tuple[tuple[str, ...], ...]:
        return tuple((a,) for a in self.attributes) + self.intersections

    def config(self, alpha: float, n_tests: int = 1) -> AuditConfig:
        return AuditConfig(self.dimensions, self.positive_classes, dict(self.reference_groups),
                           self.min_group_size, self.min_ratio, self.max_difference,
                           self.confidence, alpha, n_tests)

    def empty(self) -> FairnessState:
        return FairnessState()

    def _fold(self, tables: Tables, attrs: Mapping[str, np.ndarray], label: np.ndarray,
              pred: np.ndarray, weight: np.ndarray) -> dict[str, np.ndarray]:
        delta: dict[str, np.ndarray] = {}
        for fields in self.dimensions:
            names = group_labels(attrs, fields, len(pred)).astype(str)
            uniq, inverse = np.unique(names, return_inverse=True)
            for j, g in enumerate(uniq):
                rows = inverse == j
                delta[str(g)] = confusion.add(confusion.empty_table(), label[rows], pred[rows],
                                              weight[rows])
        return _merge_tables(tables, delta)

    def observe(self, state: FairnessState, batch: Batch) -> FairnessState:
        return self.observe_groups([state], batch, [np.arange(len(batch))])[0]

    def observe_groups(self, states: Sequence[FairnessState], batch: Batch,
                       groups: Sequence[np.ndarray],
                       reference: Reference | None = None) -> list[FairnessState]:
        """Every group at once: each group's rows of the columns the tables read, instead of
        a whole sliced :class:`Batch` per (window, slice) group (with no protected attribute
        configured, the default, that copy was all the work)."""
        usable = (batch.pred >= 0) & ~batch.is_error
        out = []
        for state, rows in zip(states, groups, strict=True):
            ok = rows[usable[rows]]
            attrs = {k: v[ok] for k, v in batch.attrs.items()} if self.dimensions else {}
            predicted = self._fold(state.predicted, attrs, np.zeros(len(ok), np.int64),
                                   batch.pred[ok], np.ones(len(ok), np.int64))
            out.append(FairnessState(predicted, state.labelled))
        return out

    def observe_labels(self, state: FairnessState, labelled: LabelledBatch) -> FairnessState:
        ok = np.flatnonzero((labelled.pred >= 0) & ~labelled.is_error)
        attrs = {k: v[ok] for k, v in labelled.attrs.items()}
        tables = self._fold(state.labelled, attrs, labelled.label[ok], labelled.pred[ok],
                            labelled.weight[ok])
        return FairnessState(state.predicted, tables)

    def merge(self, a: FairnessState, b: FairnessState) -> FairnessState:
        return FairnessState(_merge_tables(a.predicted, b.predicted),
                             _merge_tables(a.labelled, b.labelled))

    def audit(self, state: FairnessState, alpha: float, n_tests: int = 1) -> Audit:
        return audit(state.predicted, state.labelled, self.config(alpha, n_tests))

    def render_report(self, state: FairnessState, scope: ReportScope, fmt: str) -> str:
        """The audit of a range's merged state as a self-contained HTML file or CSV."""
        if not self.dimensions:
            raise ConfigError("fairness.attributes", "no protected attributes configured")
        result = self.audit(state, scope.alpha)
        if fmt == "csv":
            return fairness_report.render_csv(result)
        return fairness_report.render_html(result, scope.model, scope.model_version,
                                           scope.from_ms, scope.to_ms, scope.windows, scope.slice)

    def evaluate(self, state: FairnessState, context: EvalContext) -> tuple[Finding, ...]:
        if not self.dimensions:
            return (Finding(self.name, self.version, Status.INSUFFICIENT_DATA, test="summary",
                            details={"reason": "no protected attributes configured "
                                               "(fairness.attributes)"}),)
        # Late labels re-evaluate the window: each look spends its share of alpha; look 0 (the
        # 0.9 share) is the first once the window's labels settled (LabelDecision).
        result = self.audit(state, look_alpha(context.alpha, context.look), context.n_tests)
        by_group: dict[str, list[Comparison]] = {}
        for c in result.comparisons:
            by_group.setdefault(c.group, []).append(c)
        refs = {s.reference for s in result.summaries}
        out = [self._group_finding(g, by_group.get(g.group, []))
               for g in result.groups if g.group not in refs]
        n = max((g.n_predictions for g in result.groups), default=0)
        statuses = {f.status for f in out}
        if not result.summaries:
            main_status = Status.INSUFFICIENT_DATA
        else:
            main_status = next((s for s in (Status.ALERT, Status.WARN) if s in statuses),
                               Status.OK)
        worst = max((abs(c.difference) for c in result.comparisons), default=None)
        main = Finding(
            self.name, self.version, main_status, score=worst, threshold=self.max_difference,
            p_value=min((c.p_adjusted for c in result.comparisons), default=None),
            severity=Severity.TICKET if main_status is Status.ALERT else Severity.NONE, n=n,
            test="summary", details=jsonable({
                "dimensions": [{"dimension": s.dimension, "reference": s.reference,
                                "reference_source": s.reference_source, "groups": s.groups,
                                **s.gaps} for s in result.summaries],
                "family_size": result.family_size, "alpha": context.alpha,
                "look": context.look, "alpha_look": result.config.alpha,
                "groups_alerting": sorted(f.subject for f in out if f.status is Status.ALERT),
                **({} if result.summaries else
                   {"reason": f"no group has {self.min_group_size} predictions"})}))
        return (main, *out)

    def _group_finding(self, g: Any, comps: list[Comparison]) -> Finding:
        counts = {"n_predictions": g.n_predictions, "n_labelled": g.n_labelled,
                  "rates": {m: {"x": r.x, "n": r.n, "value": r.value} for m, r in g.rates.items()}}
        if g.n_predictions < self.min_group_size or not comps:
            return Finding(self.name, self.version, Status.INSUFFICIENT_DATA, n=g.n_predictions,
                           subject=g.group, test="fisher-exact", details=jsonable(
                               {**counts, "reason": f"{g.n_predictions} predictions, "
                                                    f"{g.n_labelled} labelled; need "
                                                    f"{self.min_group_size}"}))
        if any(c.violation for c in comps):
            status = Status.ALERT
        else:
            status = Status.WARN if any(c.significant for c in comps) else Status.OK
        worst = max(comps, key=lambda c: (c.violation, c.significant, abs(c.difference)))
        ordered = sorted(comps, key=lambda c: (not c.violation, not c.significant, c.p_value))
        return Finding(
            self.name, self.version, status, score=abs(worst.difference),
            threshold=self.max_difference, p_value=min(c.p_adjusted for c in comps),
            severity=Severity.TICKET if status is Status.ALERT else Severity.NONE,
            n=g.n_predictions, subject=g.group, test="fisher-exact",
            details=jsonable({**counts, "dimension": g.dimension, "reference": worst.reference,
                              "comparisons": [_comparison_json(c) for c in ordered]}))


def _comparison_json(c: Comparison) -> dict[str, Any]:
    return {"metric": c.metric, "value": c.value, "n": c.n, "reference_value": c.ref_value,
            "reference_n": c.ref_n, "difference": c.difference, "difference_ci": c.difference_ci,
            "ratio": c.ratio, "ratio_ci": c.ratio_ci, "p_value": c.p_value,
            "p_adjusted": c.p_adjusted, "significant": c.significant,
            "simultaneous_ci": c.simultaneous_ci, "violation": c.violation}
