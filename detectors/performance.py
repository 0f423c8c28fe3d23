"""Performance from late labels per slice and window, with a label-free estimate beside it.

Reference profile keys read here (built by :func:`build_performance_profile`, which reference
capture calls on labelled reference predictions), under ``profile["performance"]``:

``n``, ``correct``, ``accuracy``      labelled reference predictions, correct ones, their ratio
``calibration_grid``                  the confidence grid spec (logit grid, see
                                      :mod:`detectors.stats.calibration`)
``calibration_cuts``                  int64 ``[k]`` grid positions where the calibration bins start
``calibration_edges``                 float64 ``[k + 1]`` their confidence edges (display)
``calibration_accuracy``              float64 ``[k]`` isotonic accuracy per bin (the CBPE map)
``calibration_n``                     float64 ``[k]`` labelled reference predictions per bin
``calibration_counts``                float64 ``[k]`` the whole reference's predictions per bin
``slices``                            ``{slice name: float64 [n, correct]}`` per-slice baselines
``slice_calibration_counts``          ``{slice name: float64 [k]}`` each slice's predictions per bin
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from scipy import stats

from detectors._verdict import NO_SLICE_REFERENCE, evidence, jsonable, look_alpha
from detectors.stats import calibration as cal
from detectors.stats import confusion
from detectors.stats import sequential as seq
from monitor.contract import (
    ALL_SLICE,
    Batch,
    DataclassStateCodec,
    EvalContext,
    Finding,
    LabelledBatch,
    Reference,
    Severity,
    Status,
    group_offsets,
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
    grid = cal.grid_counts(confidence)
    per_slice: dict[str, np.ndarray] = {}
    slice_grid: dict[str, np.ndarray] = {}
    if slices is not None:
        rows: dict[str, list[int]] = {}
        for i, row in enumerate(slices):
            for s in row:
                rows.setdefault(s, []).append(i)
        for s, idx in rows.items():
            per_slice[s] = np.array([float(len(idx)), float(correct[idx].sum())])
            slice_grid[s] = cal.fold(cal.grid_counts(np.asarray(confidence)[idx]), m["cuts"])
    n = float(len(correct))
    return {"n": n, "correct": float(correct.sum()),
            "accuracy": float(correct.mean()) if n else float("nan"),
            "calibration_grid": cal.GRID_SPEC.spec, "calibration_cuts": m["cuts"],
            "calibration_edges": m["edges"], "calibration_accuracy": m["accuracy"],
            "calibration_n": m["n"], "calibration_counts": cal.fold(grid, m["cuts"]),
            "slices": per_slice, "slice_calibration_counts": slice_grid}


@dataclass(frozen=True)
class Performance(DataclassStateCodec):
    """Accuracy, macro precision/recall/F1 and per-class recall from late labels, per slice.

    Findings per key: the main one (subject ``""``, test ``confidence-sequence``) judges realised
    accuracy against the reference -- the slice's own baseline; a slice without one (fewer than
    ``min_samples`` labelled reference predictions) is ``no_reference`` ("no reference for this
    slice"), never compared with another population. Labels trickle in and every batch
    re-evaluates the window, so the window's accuracy gets an *anytime-valid* upper confidence
    bound ``U`` (:func:`detectors.stats.sequential.upper_cs`: it holds at every look at once,
    Howard et al. 2021, Waudby-Smith & Ramdas 2024) and the reference an exact one-look lower
    bound ``L`` (Clopper-Pearson: the reference never changes), each at ``alpha / (2 n_tests)``.
    A regression is significant when ``U < L`` (so the probability that any look of a stationary
    slice-window finds one is at most ``alpha / n_tests``); ``p_value`` is the smallest level at
    which it would be, times ``n_tests``. Significant: ``warn``; and the point drop at least
    ``min_drop``: ``alert`` with severity ticket; and the *bound* ``L - U`` at least
    ``page_drop``: severity page -- a page needs a confidence bound beyond its threshold, never a
    point estimate. ``score`` is ``-log10 p_value`` and ``threshold`` ``-log10 alpha`` (as for
    every detector); ``details.drop_bound`` is ``L - U``, the accuracy points surely lost.
    Below ``min_samples`` labelled predictions or ``min_coverage`` (labelled /
    predictions) it is ``insufficient_data``. The reported ``accuracy_ci`` is the one-look
    Clopper-Pearson interval at level ``confidence``.

    The second finding (subject ``estimated``, test ``cbpe``) is the label-free accuracy estimate
    from confidence (:mod:`detectors.stats.calibration`), available as soon as predictions are,
    compared with the same map's estimate for the slice's own reference predictions; ``warn``
    (never paged) when the estimated drop is at least ``estimate_drop`` and significant against
    a standard error that includes the calibration's own uncertainty (one-sided z at the look's
    share of ``alpha`` / ``n_tests``).

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
    ('alert', 'ticket', 0.61)

    A ticket, not a page: 14 points lost by the point estimate, but only 5 for sure (the bounds),
    under the 10 a page needs.

    >>> round(main.details["drop_bound"], 2)
    0.05

    Confidence did not move, so the label-free estimate still expects the reference accuracy:
    CBPE sees drops that show in confidence (harder inputs), only labels see the rest.

    >>> round(est.details["estimated_accuracy"], 2), est.status.value
    (0.76, 'ok')
    """

    name: ClassVar[str] = "performance"
    version: ClassVar[int] = 2
    state_type: ClassVar[type] = PerformanceState
    wide_columns: ClassVar[frozenset[str]] = frozenset()

    min_samples: int | None = None  # labelled predictions; None: the service's slices.min_samples
    # labelled / predictions under which a window is insufficient: a handful of early labels is
    # rarely a random sample of the window (the easy cases are labelled first)
    min_coverage: float = 0.05
    min_drop: float = 0.02  # accuracy points: a smaller significant drop only warns
    page_drop: float = 0.10  # accuracy points the confidence bound must clear to page
    estimate_drop: float = 0.05  # accuracy points the label-free estimate may fall before warning
    confidence: float = 0.95  # level of the reported (one-look) Clopper-Pearson intervals
    max_classes_reported: int = 50  # per-class recalls in details (the worst ones)

    def empty(self) -> PerformanceState:
        return PerformanceState()

    def observe(self, state: PerformanceState, batch: Batch) -> PerformanceState:
        return self.observe_groups([state], batch, [np.arange(len(batch))], None)[0]

    def observe_groups(self, states: Sequence[PerformanceState], batch: Batch,
                       groups: Sequence[np.ndarray],
                       reference: Reference | None = None) -> list[PerformanceState]:
        """Every group at once: one confidence-grid ``bincount`` over (group, bin)."""
        ok = (batch.pred >= 0) & ~batch.is_error
        rows, starts = group_offsets(groups)
        which = np.repeat(np.arange(len(groups)), np.diff(np.r_[starts, len(rows)]))
        n_ok = np.bincount(which, weights=ok[rows], minlength=len(groups)).astype(np.int64)
        grids = cal.group_grid_counts(batch.confidence, rows[ok[rows]], which[ok[rows]],
                                      len(groups))
        return [PerformanceState(s.n + len(g), s.n_ok + int(k), s.conf_grid + grid, s.table,
                                 s.labelled_errors)
                for s, g, k, grid in zip(states, groups, n_ok.tolist(), grids, strict=True)]

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
        estimated = self._estimate(state, ref, context, need)
        details["estimated_accuracy"] = estimated.details.get("estimated_accuracy")
        n_lab = realised["labelled"]
        if n_lab < need or realised["coverage"] < self.min_coverage:
            reason = (f"{n_lab} labelled predictions, need {need}" if n_lab < need else
                      f"label coverage {realised['coverage']:.1%} under {self.min_coverage:.0%}")
            main = Finding(self.name, self.version, Status.INSUFFICIENT_DATA, n=n_lab,
                           test=TEST, details=jsonable({**details, "reason": reason}))
        elif not base_n:
            reason = ("no labelled reference for this version" if scope == "none"
                      else NO_SLICE_REFERENCE)
            main = Finding(self.name, self.version, Status.NO_REFERENCE, n=n_lab, test=TEST,
                           details=jsonable({**details, "reason": reason}))
        else:
            main = self._regression(realised, base_n, base_correct, context, details)
        return main, estimated

    # -- parts ---------------------------------------------------------------------------
    def _realised(self, s: PerformanceState) -> dict[str, Any]:
        m = confusion.metrics(s.table)
        lo, hi = seq.clopper_pearson(m.correct, m.n, 1 - self.confidence)
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

    def _estimate(self, s: PerformanceState, ref: Mapping[str, Any] | None, ctx: EvalContext,
                  need: int) -> Finding:
        def quiet(status: Status, reason: str, n: int) -> Finding:
            return Finding(self.name, self.version, status, n=n, subject="estimated",
                           test="cbpe", details={"reason": reason})

        if ref is None or ref.get("calibration_grid") != cal.GRID_SPEC.spec:
            return quiet(Status.NO_REFERENCE, "no calibration in the reference (or one of an "
                         "older format: capture the reference again)", s.n_ok)
        if ctx.key.slice == ALL_SLICE:
            own = ref.get("calibration_counts")
        else:
            own = (ref.get("slice_calibration_counts") or {}).get(ctx.key.slice)
        if own is None or float(np.sum(own)) < need:
            return quiet(Status.NO_REFERENCE, NO_SLICE_REFERENCE, s.n_ok)
        if s.n_ok < need:
            return quiet(Status.INSUFFICIENT_DATA, f"{s.n_ok} predictions, need {need}", s.n_ok)
        cuts, acc = np.asarray(ref["calibration_cuts"]), np.asarray(ref["calibration_accuracy"])
        window, own = cal.fold(s.conf_grid, cuts), np.asarray(own, np.float64)
        est = float((window * acc).sum() / window.sum())
        base = float((own * acc).sum() / own.sum())
        se = cal.difference_se(window, own, acc, np.asarray(ref["calibration_n"]))
        level = look_alpha(ctx.alpha, ctx.look) / max(1, ctx.n_tests)
        z = float(stats.norm.isf(level))
        drop = base - est
        lo, hi = drop - z * se, drop + z * se
        significant = lo > 0
        status = Status.WARN if significant and drop >= self.estimate_drop else Status.OK
        return Finding(self.name, self.version, status, score=est, threshold=base - self.estimate_drop,
                       p_value=float(min(1.0, stats.norm.sf(drop / se) / level * ctx.alpha))
                       if se > 0 else None,
                       n=s.n_ok, subject="estimated", test="cbpe",
                       details=jsonable({"estimated_accuracy": est, "reference_estimate": base,
                                         "estimated_drop": drop, "estimate_se": se,
                                         "drop_interval": [lo, hi], "alpha_level": level,
                                         "estimate_drop": self.estimate_drop}))

    def _regression(self, r: Mapping[str, Any], base_n: float, base_correct: float,
                    ctx: EvalContext, details: dict[str, Any]) -> Finding:
        x, n = r["correct"], r["labelled"]
        level = ctx.alpha / max(1, ctx.n_tests)  # the CS needs no spending: it holds over looks
        upper = float(seq.upper_cs(x, n, level / 2, base_correct / base_n))
        lower = float(seq.clopper_pearson_lower(base_correct, base_n, level / 2))
        p = regression_p(x, n, base_correct, base_n)
        p_adj = min(1.0, p * max(1, ctx.n_tests))
        drop = base_correct / base_n - r["accuracy"]
        bound = lower - upper  # accuracy points lost for sure (negative: not sure of any)
        significant = p_adj <= ctx.alpha
        if significant and drop >= self.min_drop:
            status = Status.ALERT
            severity = Severity.PAGE if bound >= self.page_drop else Severity.TICKET
        else:
            status, severity = (Status.WARN if significant else Status.OK), Severity.NONE
        return Finding(self.name, self.version, status, score=evidence(p_adj),
                       threshold=evidence(ctx.alpha), p_value=p_adj, severity=severity,
                       n=n, test=TEST, details=jsonable(
                           {**details, "accuracy_drop": drop, "drop_bound": bound,
                            "window_upper_bound": upper, "reference_lower_bound": lower,
                            "p_raw": p, "alpha": ctx.alpha, "n_tests": ctx.n_tests,
                            "look": ctx.look, "min_drop": self.min_drop,
                            "page_drop": self.page_drop}))


TEST = "confidence-sequence"


def regression_p(x: float, n: float, ref_correct: float, ref_n: float) -> float:
    """The smallest level ``a`` at which the window's anytime upper bound at ``a / 2`` falls below
    the reference's Clopper-Pearson lower bound at ``a / 2``: ``min_c 2 max(p_w(c), p_r(c))``
    over thresholds ``c``, with ``p_w(c)`` the anytime p-value of "window accuracy >= c" and
    ``p_r(c)`` the exact p-value of "reference accuracy <= c". Valid over all looks (the decision
    at every level is the bound comparison), and independent of ``n_tests``.

    >>> round(regression_p(510, 600, 9000, 10000), 4), regression_p(590, 600, 9000, 10000)
    (0.0315, 1.0)
    """
    if n <= 0 or ref_n <= 0 or x / n >= ref_correct / ref_n:
        return 1.0
    mu = ref_correct / ref_n
    lo, hi = x / n, ref_correct / ref_n
    steps = np.linspace(0.0, 1.0, 17)
    for _ in range(5):  # p_w shrinks as c grows, p_r grows: find the crossing on refined grids
        c = lo + (hi - lo) * steps
        gap = seq.anytime_p(x, n, c, mu) - stats.binom.sf(ref_correct - 1, ref_n, c)
        k = int(np.argmax(gap <= 0)) if np.any(gap <= 0) else len(c) - 1
        lo, hi = c[max(k - 1, 0)], c[k]
    c = np.array([lo, hi])
    both = np.maximum(seq.anytime_p(x, n, c, mu), stats.binom.sf(ref_correct - 1, ref_n, c))
    return float(min(1.0, 2 * float(both.min())))


def _baseline(ref: Mapping[str, Any] | None, slice_name: str, need: int) -> tuple[float, float, str]:
    """(n, correct, scope) of the reference this slice is compared with: the whole version's for
    slice ``all``, else the slice's own baseline when the reference has enough of it; (0, 0,
    "none") without a labelled reference, (0, 0, "slice") when the slice has none of its own."""
    if ref is None:
        return 0.0, 0.0, "none"
    if slice_name == ALL_SLICE:
        return float(ref["n"]), float(ref["correct"]), ALL_SLICE
    own = (ref.get("slices") or {}).get(slice_name)
    if own is not None and own[0] >= need:
        return float(own[0]), float(own[1]), "slice"
    return 0.0, 0.0, "slice"
