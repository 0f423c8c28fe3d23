"""Performance from late labels per slice and window, with a label-free estimate beside it.

Reference profile keys read here (built by :func:`build_performance_profile`, which reference
capture calls on labelled reference predictions), under ``profile["performance"]``:

``n``, ``correct``, ``accuracy``      labelled reference predictions, correct ones, their ratio
``calibration_edges``                 float64 ``[k + 1]`` confidence-bin edges (multiples of 0.01)
``calibration_accuracy``              float64 ``[k]`` isotonic accuracy per bin (the CBPE map)
``calibration_n``                     float64 ``[k]`` reference predictions per bin
``slices``                            ``{slice name: float64 [n, correct]}`` per-slice baselines
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from detectors._verdict import evidence, jsonable
from detectors.stats import calibration as cal
from detectors.stats import confusion
from detectors.stats.proportions import fisher_p, wilson
from monitor.contract import (
    ALL_SLICE,
    Batch,
    DataclassStateCodec,
    EvalContext,
    Finding,
    LabelledBatch,
    Severity,
    Status,
)


@dataclass(frozen=True, slots=True)
class PerformanceState:
    """Additive counts only: merging is addition, a retracted label is a -1."""

    n: int = 0  # predictions observed (errors included)
    n_ok: int = 0  # predictions with a class (the denominator of label coverage)
    conf_grid: np.ndarray = field(default_factory=lambda: np.zeros(cal.GRID, np.int64))
    table: np.ndarray = field(default_factory=confusion.empty_table)  # (label, pred, count)
    labelled_errors: int = 0  # labels joined to error events (no prediction to score)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, PerformanceState) and self.n == other.n
                and self.n_ok == other.n_ok and self.labelled_errors == other.labelled_errors
                and np.array_equal(self.conf_grid, other.conf_grid)
                and np.array_equal(self.table, other.table))


def build_performance_profile(confidence: np.ndarray, pred: np.ndarray, label: np.ndarray,
                              slices: Sequence[Iterable[str]] | None = None,
                              prior: float = 5.0) -> dict[str, Any]:
    """The ``performance`` entry of a reference profile, from labelled reference predictions.

    Parameters
    ----------
    confidence, pred, label
        One row per labelled reference prediction (error events excluded by the caller).
    slices
        Optional slice names of each row (as the service assigns them); gives per-slice
        baselines so a slice is compared with itself, not with the average.
    prior
        Pseudo-counts shrinking each confidence bin's accuracy towards its confidence
        (:func:`detectors.stats.calibration.fit`).

    Example
    -------
    >>> rng = np.random.default_rng(1)
    >>> conf = rng.uniform(0.5, 1, 2000)
    >>> label = rng.integers(0, 3, 2000)
    >>> pred = np.where(rng.random(2000) < conf, label, (label + 1) % 3)
    >>> p = build_performance_profile(conf, pred, label, [["all"]] * 2000)
    >>> round(p["accuracy"], 3), p["slices"]["all"].tolist()
    (0.743, [2000.0, 1485.0])
    """
    correct = np.asarray(pred) == np.asarray(label)
    m = cal.fit(confidence, correct, prior)
    per_slice: dict[str, np.ndarray] = {}
    if slices is not None:
        names = [(s, bool(c)) for row, c in zip(slices, correct) for s in row]
        for s, c in names:
            acc = per_slice.setdefault(s, np.zeros(2))
            acc += (1.0, float(c))
    n = float(len(correct))
    return {"n": n, "correct": float(correct.sum()),
            "accuracy": float(correct.mean()) if n else float("nan"),
            "calibration_edges": m["edges"], "calibration_accuracy": m["accuracy"],
            "calibration_n": m["n"], "slices": per_slice}


@dataclass(frozen=True)
class Performance(DataclassStateCodec):
    """Accuracy, macro precision/recall/F1 and per-class recall from late labels, per slice.

    Findings per key: the main one (subject ``""``, test ``fisher-exact``) compares realised
    accuracy with the reference (the slice's own baseline when the reference has one) by a
    one-sided Fisher exact test (exact for the few errors of one window, where the normal
    approximation is anti-conservative), Bonferroni-corrected across the ``n_tests`` slices of
    the window. It is ``insufficient_data`` below ``min_samples`` labelled predictions or below
    ``min_coverage`` (labelled / predictions), ``alert`` with severity ticket when significant and
    the drop is at least ``min_drop``, severity page when the drop is at least ``page_drop``, and
    ``warn`` when significant but smaller. The second (subject ``estimated``, test ``cbpe``) is
    the label-free accuracy estimate from confidence, available as soon as predictions are:
    ``warn`` (never paged) when it falls ``estimate_drop`` below the baseline.

    Example
    -------
    A window where the model got worse (75 % -> 60 %), judged against its reference:

    >>> from detectors.testing import context, make_batch
    >>> from monitor.contract import LabelledBatch
    >>> rng = np.random.default_rng(0)
    >>> conf = rng.uniform(0.5, 1, 4000); label = rng.integers(0, 5, 4000)
    >>> pred = np.where(rng.random(4000) < conf, label, (label + 1) % 5)
    >>> ctx = context({"performance": build_performance_profile(conf, pred, label)})
    >>> det = Performance()
    >>> n = 600; c = rng.uniform(0.5, 1, n); y = rng.integers(0, 5, n)
    >>> p = np.where(rng.random(n) < 0.6, y, (y + 1) % 5)
    >>> s = det.observe(det.empty(), make_batch(n, pred=p, confidence=c))
    >>> s = det.observe_labels(s, LabelledBatch(np.arange(n).astype(object), np.zeros(n, np.int64),
    ...     p.astype(np.int32), y, np.ones(n, np.int64), c.astype(np.float32), np.zeros(n, bool)))
    >>> main, est = det.evaluate(s, ctx)
    >>> main.status.value, main.severity.value, round(main.details["accuracy"], 3)
    ('alert', 'page', 0.61)

    Confidence did not move, so the label-free estimate still expects the reference accuracy:
    CBPE sees drops that show in confidence (harder inputs), only labels see the rest.

    >>> round(est.details["estimated_accuracy"], 3), est.status.value
    (0.756, 'ok')
    """

    name: ClassVar[str] = "performance"
    version: ClassVar[int] = 1
    state_type: ClassVar[type] = PerformanceState
    wide_columns: ClassVar[frozenset[str]] = frozenset()

    min_samples: int | None = None  # labelled predictions; None: the service's slices.min_samples
    min_coverage: float = 0.0  # labelled / predictions under which a window is insufficient
    min_drop: float = 0.02  # accuracy points: a smaller significant drop only warns
    page_drop: float = 0.10  # accuracy points: a significant drop this large pages
    estimate_drop: float = 0.05  # accuracy points the label-free estimate may fall before warning
    confidence: float = 0.95  # level of the reported Wilson intervals
    max_classes_reported: int = 50  # per-class recalls in details (the worst ones)

    def empty(self) -> PerformanceState:
        return PerformanceState()

    def observe(self, state: PerformanceState, batch: Batch) -> PerformanceState:
        ok = (batch.pred >= 0) & ~batch.is_error
        return PerformanceState(state.n + len(batch), state.n_ok + int(ok.sum()),
                                state.conf_grid + cal.grid_counts(batch.confidence[ok]),
                                state.table, state.labelled_errors)

    def observe_labels(self, state: PerformanceState, labelled: LabelledBatch) -> PerformanceState:
        ok = (labelled.pred >= 0) & ~labelled.is_error
        table = confusion.add(state.table, labelled.label[ok], labelled.pred[ok],
                              labelled.weight[ok])
        return PerformanceState(state.n, state.n_ok, state.conf_grid, table,
                                state.labelled_errors + int(labelled.weight[~ok].sum()))

    def merge(self, a: PerformanceState, b: PerformanceState) -> PerformanceState:
        return PerformanceState(a.n + b.n, a.n_ok + b.n_ok, a.conf_grid + b.conf_grid,
                                confusion.merge(a.table, b.table),
                                a.labelled_errors + b.labelled_errors)

    def evaluate(self, state: PerformanceState, context: EvalContext) -> tuple[Finding, ...]:
        need = self.min_samples or context.min_samples
        ref = (context.reference.profile.get("performance")
               if context.reference is not None else None)
        base_n, base_correct, scope = _baseline(ref, context.key.slice, need)
        realised = self._realised(state)
        details = {**realised, "reference_accuracy": base_correct / base_n if base_n else None,
                   "reference_n": base_n, "reference_scope": scope, "min_samples": need,
                   "min_coverage": self.min_coverage}
        estimated = self._estimate(state, ref, base_n, base_correct, need)
        details["estimated_accuracy"] = estimated.details.get("estimated_accuracy")
        n_lab = realised["labelled"]
        if n_lab < need or realised["coverage"] < self.min_coverage:
            reason = (f"{n_lab} labelled predictions, need {need}" if n_lab < need else
                      f"label coverage {realised['coverage']:.1%} under {self.min_coverage:.0%}")
            main = Finding(self.name, self.version, Status.INSUFFICIENT_DATA, n=n_lab,
                           test="fisher-exact", details=jsonable({**details, "reason": reason}))
        elif not base_n:
            main = Finding(self.name, self.version, Status.NO_REFERENCE, n=n_lab,
                           test="fisher-exact", details=jsonable(
                               {**details, "reason": "no labelled reference for this version"}))
        else:
            main = self._regression(realised, base_n, base_correct, context, details)
        return main, estimated

    # -- parts ---------------------------------------------------------------------------
    def _realised(self, s: PerformanceState) -> dict[str, Any]:
        m = confusion.metrics(s.table)
        lo, hi = wilson(m.correct, m.n, self.confidence)
        worst = np.argsort(m.recall, kind="stable")[: self.max_classes_reported]
        labelled_classes = [int(i) for i in worst if m.support[i] > 0]
        return {"predictions": s.n, "predictions_ok": s.n_ok, "labelled": m.n,
                "labelled_errors": s.labelled_errors, "coverage": m.n / s.n_ok if s.n_ok else 0.0,
                "correct": m.correct, "accuracy": m.correct / m.n if m.n else None,
                "accuracy_ci": [float(lo), float(hi)] if m.n else None,
                "macro_precision": m.macro_precision, "macro_recall": m.macro_recall,
                "macro_f1": m.macro_f1, "ci_level": self.confidence,
                "class_recall": {str(m.classes[i]): float(m.recall[i]) for i in labelled_classes},
                "class_support": {str(m.classes[i]): int(m.support[i]) for i in labelled_classes}}

    def _estimate(self, s: PerformanceState, ref: Mapping[str, Any] | None, base_n: float,
                  base_correct: float, need: int) -> Finding:
        if ref is None or "calibration_edges" not in ref:
            return Finding(self.name, self.version, Status.NO_REFERENCE, n=s.n_ok,
                           subject="estimated", test="cbpe",
                           details={"reason": "no calibration in the reference"})
        if s.n_ok < need:
            return Finding(self.name, self.version, Status.INSUFFICIENT_DATA, n=s.n_ok,
                           subject="estimated", test="cbpe",
                           details={"reason": f"{s.n_ok} predictions, need {need}"})
        edges, acc = np.asarray(ref["calibration_edges"]), np.asarray(ref["calibration_accuracy"])
        est = cal.estimate(s.conf_grid, edges, acc)
        se = cal.estimate_se(s.conf_grid, edges, acc)
        base = base_correct / base_n if base_n else float(ref["accuracy"])
        threshold = base - self.estimate_drop
        status = Status.WARN if est < threshold else Status.OK
        return Finding(self.name, self.version, status, score=est, threshold=threshold,
                       n=s.n_ok, subject="estimated", test="cbpe",
                       details=jsonable({"estimated_accuracy": est, "estimate_se": se,
                                         "reference_accuracy": base,
                                         "estimate_drop": self.estimate_drop}))

    def _regression(self, r: Mapping[str, Any], base_n: float, base_correct: float,
                    ctx: EvalContext, details: dict[str, Any]) -> Finding:
        p = float(fisher_p(r["correct"], r["labelled"], int(base_correct), int(base_n), "less"))
        p_adj = min(1.0, p * max(1, ctx.n_tests))
        drop = base_correct / base_n - r["accuracy"]
        significant = p_adj <= ctx.alpha
        if significant and drop >= self.min_drop:
            status = Status.ALERT
            severity = Severity.PAGE if drop >= self.page_drop else Severity.TICKET
        else:
            status, severity = (Status.WARN if significant else Status.OK), Severity.NONE
        return Finding(self.name, self.version, status, score=evidence(p_adj),
                       threshold=evidence(ctx.alpha), p_value=p_adj, severity=severity,
                       n=r["labelled"], test="fisher-exact", details=jsonable(
                           {**details, "accuracy_drop": drop, "p_raw": p, "alpha": ctx.alpha,
                            "n_tests": ctx.n_tests, "min_drop": self.min_drop,
                            "page_drop": self.page_drop}))


def _baseline(ref: Mapping[str, Any] | None, slice_name: str, need: int) -> tuple[float, float, str]:
    """(n, correct, scope) of the reference this slice is compared with: its own baseline when
    the reference has enough of it, else the overall one."""
    if ref is None:
        return 0.0, 0.0, "none"
    own = (ref.get("slices") or {}).get(slice_name)
    if own is not None and own[0] >= need:
        return float(own[0]), float(own[1]), "slice"
    return float(ref["n"]), float(ref["correct"]), ALL_SLICE
