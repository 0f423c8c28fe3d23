"""Prediction drift: class distribution, confidence distribution and BBSD on the softmax outputs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from detectors import _verdict as verdict
from detectors._equality import ValueEquality
from detectors.stats import histograms as hist
from detectors.stats import univariate as uni
from monitor.contract import Batch, DataclassStateCodec, EvalContext, Finding

PROBS_GRID = hist.Grid("unit", 0.1)  # 323 logit bins per class: memory is classes x 323 x 4 bytes


def _zeros_probs() -> np.ndarray:
    return np.zeros((0, PROBS_GRID.unit_bins), np.int32)


@dataclass(frozen=True, slots=True, eq=False)
class PredictionDriftState(ValueEquality):
    """Integer counts only, so merging is exact."""

    n: int = 0  # events observed
    class_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    conf_lo: int = 0  # confidence sketch on the unit grid
    conf_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    probs_counts: np.ndarray = field(default_factory=_zeros_probs)  # [classes, bins] int32


def _pad(a: np.ndarray, rows: int) -> np.ndarray:
    if a.shape[0] >= rows:
        return a
    return np.concatenate([a, np.zeros((rows - a.shape[0], *a.shape[1:]), a.dtype)])


def count_probs(probs: np.ndarray, max_classes: int) -> np.ndarray:
    """Per-class sketch of softmax outputs on :data:`PROBS_GRID`: int32 [classes, bins]."""
    probs = probs[:, :max_classes]
    classes, bins = probs.shape[1], PROBS_GRID.unit_bins
    idx = hist.bin_index(PROBS_GRID, probs) + np.arange(classes) * bins
    return np.bincount(idx.ravel(), minlength=classes * bins).reshape(classes, bins).astype(np.int32)


@dataclass(frozen=True)
class PredictionDrift(DataclassStateCodec):
    """Drift of what the model predicts: class mix, confidence and softmax outputs (BBSD).

    Tests, as one family: a chi-square homogeneity test of the predicted-class counts against the
    reference (rare classes pooled so every expected count is at least 5); a two-sample KS test of
    the confidence; and, when events carry ``probs``, black-box shift detection (BBSD, Lipton et
    al. 2018; Rabanser et al. 2019): one KS test per class on that class's softmax output.

    Significance level: ``EvalContext.alpha`` bounds the probability that this detector alerts on
    stationary data in a window, over all its tests and all ``n_tests`` slices: the family's
    p-values are corrected by ``correction`` (Bonferroni by default, as in "Failing Loudly") and
    multiplied by ``n_tests``. A significant test alerts when its effect (total variation
    distance of the class mix, or KS statistic) is at least ``min_effect``, else warns.

    Example
    -------
    A 5-class model whose inputs get harder from window 3 on (logits shrink, so the class mix
    stays put but confidence drops):

    >>> from detectors.reference import build_reference_profile
    >>> from detectors.testing import context, make_batch
    >>> rng = np.random.default_rng(3)
    >>> def window(scale, n=400):
    ...     logits = rng.normal(0, 1, (n, 5)) + 4.0 * scale * np.eye(5)[rng.integers(0, 5, n)]
    ...     p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    ...     return make_batch(n, rng, probs=p)
    >>> ctx = context(build_reference_profile([window(1.0) for _ in range(5)]), alpha=0.01)
    >>> det = PredictionDrift()
    >>> for w in range(6):
    ...     main = det.evaluate(det.observe(det.empty(), window(0.6 if w >= 3 else 1.0)), ctx)[0]
    ...     print(w, main.status.value, main.details["top_tests"][:1])
    0 ok []
    1 ok []
    2 ok []
    3 alert ['confidence']
    4 alert ['confidence']
    5 alert ['confidence']
    """

    name: ClassVar[str] = "prediction_drift"
    version: ClassVar[int] = 1
    state_type: ClassVar[type] = PredictionDriftState

    correction: str = "bonferroni"  # "bonferroni" or "bh"
    bbsd: bool = True
    max_classes: int = 1000  # BBSD memory bound: classes beyond it are not tested
    min_effect: float = 0.0
    top_k: int = 5

    def empty(self) -> PredictionDriftState:
        return PredictionDriftState()

    def observe(self, state: PredictionDriftState, batch: Batch) -> PredictionDriftState:
        pred = np.asarray(batch.pred)
        classes = np.bincount(pred[pred >= 0]).astype(np.int64)
        lo, conf = hist.count(hist.UNIT, batch.confidence)
        probs = _zeros_probs()
        if self.bbsd and batch.probs.shape[1] and np.any(batch.has_probs):
            probs = count_probs(np.asarray(batch.probs[batch.has_probs], np.float64),
                                self.max_classes)
        return self.merge(state, PredictionDriftState(len(batch), classes, lo, conf, probs))

    def merge(self, a: PredictionDriftState, b: PredictionDriftState) -> PredictionDriftState:
        c = max(a.class_counts.size, b.class_counts.size)
        lo, conf = hist.merge(a.conf_lo, a.conf_counts, b.conf_lo, b.conf_counts)
        k = max(a.probs_counts.shape[0], b.probs_counts.shape[0])
        return PredictionDriftState(a.n + b.n, _pad(a.class_counts, c) + _pad(b.class_counts, c),
                                    lo, conf, _pad(a.probs_counts, k) + _pad(b.probs_counts, k))

    def evaluate(self, state: PredictionDriftState, context: EvalContext) -> tuple[Finding, ...]:
        if context.reference is None:
            return (Finding.no_reference(self, state.n),)
        ref = verdict.slice_profile(context).get("prediction")
        if not ref:
            return (verdict.no_reference(self, state.n, "reference profile has no predictions"),)
        n = int(state.class_counts.sum())
        if n < context.min_samples or float(ref["n"]) < context.min_samples:
            return (Finding.insufficient(self, n, context.min_samples),)
        rows = [self._classes(state, ref)]
        conf = self._confidence(state, ref["confidence"], context.min_samples)
        rows += [conf] if conf else []
        if self.bbsd:
            rows += self._bbsd(state, np.asarray(ref["probs_counts"]), context.min_samples)
        return self._findings(rows, n, context)

    @staticmethod
    def _classes(s: PredictionDriftState, ref: Mapping[str, Any]) -> dict[str, Any]:
        r = np.asarray(ref["class_counts"], np.int64)
        c = max(r.size, s.class_counts.size)
        r, w = _pad(r, c), _pad(s.class_counts, c)
        stat, p, dof = uni.chi2_homogeneity(*uni.pool_sparse(r, w, ordered=False))
        pr, pw = r / max(r.sum(), 1), w / max(w.sum(), 1)
        return {"test": "chi2", "subject": "class_distribution", "statistic": stat, "p_value": p,
                "dof": dof, "effect": 0.5 * float(np.abs(pr - pw).sum()), "n": int(w.sum()),
                "histogram": {"classes": np.arange(c), "reference": pr, "window": pw}}

    @staticmethod
    def _confidence(s: PredictionDriftState, ref: Mapping[str, Any],
                    need: int) -> dict[str, Any] | None:
        lo, r, w = hist.align(int(ref["grid_lo"]), np.asarray(ref["grid_counts"]), s.conf_lo,
                              s.conf_counts)
        if min(r.sum(), w.sum()) < need:
            return None
        d, p = uni.ks_counts(r, w)
        cuts = np.asarray(ref["cut_index"], np.int64) - lo
        cuts[0] = 0
        rq, wq = hist.fold(r, cuts), hist.fold(w, cuts)
        return {"test": "ks", "subject": "confidence", "statistic": d, "p_value": p,
                "effect": d, "n": int(w.sum()), "n_ref": int(r.sum()),
                "histogram": {"edges": np.asarray(ref["edges"]), "reference": rq / r.sum(),
                              "window": wq / w.sum()}}

    def _bbsd(self, s: PredictionDriftState, ref: np.ndarray, need: int) -> list[dict[str, Any]]:
        win = s.probs_counts
        if ref.shape[0] == 0 or win.shape[0] != ref.shape[0]:
            return []
        n, m = int(ref[0].sum()), int(win[0].sum())
        if min(n, m) < need:
            return []
        # All classes at once: the CDF gap of every class over the shared logit grid.
        gap = np.abs(np.cumsum(ref, 1) / n - np.cumsum(win, 1) / m).max(1)
        return [{"test": "ks", "subject": f"bbsd[{c}]", "statistic": float(d),
                 "p_value": uni.ks_pvalue(float(d), n, m), "effect": float(d), "n": m,
                 "n_ref": n} for c, d in enumerate(gap)]

    def _findings(self, rows: list[dict[str, Any]], n: int,
                  ctx: EvalContext) -> tuple[Finding, ...]:
        p_adj, rejected, crit = verdict.family(np.array([r["p_value"] for r in rows]), ctx,
                                               self.correction)
        effect_ok = np.array([r["effect"] >= self.min_effect for r in rows])
        for row, pa, rej, ok, thr in zip(rows, p_adj, rejected, effect_ok,
                                         verdict.thresholds(rows, crit), strict=True):
            row.update(p_adjusted=pa, alarm=bool(rej and ok), rejected=bool(rej),
                       status=verdict.sub_status(rej, ok), threshold=thr)
        ranked = sorted(rows, key=lambda r: (not r["rejected"], -verdict.evidence(r["p_value"]),
                                             -r["effect"]))
        bbsd = [r for r in rows if r["subject"].startswith("bbsd")]
        subs = [self._sub(r) for r in rows if not r["subject"].startswith("bbsd")]
        if bbsd:
            worst = min(bbsd, key=lambda r: (r["p_value"], -r["effect"]))
            top = sorted(bbsd, key=lambda r: -r["effect"])[:10]
            subs.append(self._sub({**worst, "subject": "bbsd",
                                   "status": max((r["status"] for r in bbsd), key=_rank),
                                   "classes": [{k: r[k] for k in ("subject", "statistic",
                                                                  "p_value", "p_adjusted")}
                                               for r in top]}))
        tables = [{k: v for k, v in r.items() if k not in ("histogram", "status")}
                  for r in ranked if not r["subject"].startswith("bbsd") or r["rejected"]]
        details = {"correction": self.correction, "n_tests_in_family": len(rows),
                   "top_tests": [r["subject"] for r in ranked if r["rejected"]][:self.top_k],
                   "tests": tables,
                   "histograms": {r["subject"]: r["histogram"] for r in rows if "histogram" in r}}
        main = verdict.main_finding(self, ctx, p_adj=p_adj, rejected=rejected,
                                    effect_ok=effect_ok, n=n,
                                    test=f"chi2+ks+bbsd/{self.correction}", details=details)
        return (main, *subs)

    def _sub(self, r: dict[str, Any]) -> Finding:
        return Finding(self.name, self.version, r["status"], score=r["statistic"],
                       threshold=r["threshold"], p_value=r["p_value"], n=r["n"],
                       subject=r["subject"], test=r["test"],
                       details=verdict.jsonable({k: v for k, v in r.items()
                                                 if k not in ("status", "histogram")}))


def _rank(status: Any) -> int:
    return ["ok", "warn", "alert"].index(status.value)
