"""Prediction drift: class distribution, confidence distribution and BBSD on the softmax outputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from detectors import _verdict as verdict
from detectors._equality import ValueEquality
from detectors.stats import histograms as hist
from detectors.stats import univariate as uni
from detectors.traffic import group_bincount
from monitor.contract import (
    Batch,
    ConfigError,
    DataclassStateCodec,
    EvalContext,
    Finding,
    Reference,
    decode_value,
)

PROBS_GRID = hist.Grid("unit", 0.1)  # 323 logit bins per class: memory is classes x 323 x 4 bytes
PROBS_BINS = PROBS_GRID.unit_bins  # a property that computes a logit: read once


def _zeros_probs() -> np.ndarray:
    return np.zeros((0, PROBS_BINS), np.int32)


SKETCH_VERSION = 2  # 1: one row per class of the model (grew with the head), one family
FAMILIES = ("class_mix", "confidence", "bbsd")  # the order of ``family_weights``


@dataclass(frozen=True, slots=True, eq=False)
class PredictionDriftState(ValueEquality):
    """Integer counts only, so merging is exact. Class counts and softmax sketches are kept for
    the reference's ``top_classes`` most frequent classes (``classes``) plus one "other" row, so
    the state does not grow with the model's head."""

    sketch: int = SKETCH_VERSION
    classes: tuple[int, ...] = ()  # tracked class ids (from the reference); () without one
    n: int = 0  # events observed
    class_counts: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))  # [K + 1]
    conf_lo: int = 0  # confidence sketch on the unit grid
    conf_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    probs_counts: np.ndarray = field(default_factory=_zeros_probs)  # [K + 1, bins] int32


def _is_empty(s: PredictionDriftState) -> bool:
    """Whether ``s`` is :meth:`PredictionDrift.empty`'s state, whose merge with a fresh part is
    that part (the same values and dtypes): skipping it saves a merge per group and batch."""
    return (s.n == 0 and not s.classes and s.sketch == SKETCH_VERSION and s.conf_counts.size == 0
            and s.probs_counts.size == 0 and not s.class_counts.any())


def _pad(a: np.ndarray, rows: int) -> np.ndarray:
    if a.shape[0] >= rows:
        return a
    return np.concatenate([a, np.zeros((rows - a.shape[0], *a.shape[1:]), a.dtype)])


def count_probs(probs: np.ndarray, classes: tuple[int, ...] | None = None) -> np.ndarray:
    """Per-class sketch of softmax outputs on :data:`PROBS_GRID`: int32 [rows, bins]. With
    ``classes``: one row per listed class (0 where the model has no such output) and a last
    "other" row for the mass on every other class; without: one row per column."""
    idx = probs_bins(probs, classes)
    rows, bins = idx.shape[1], PROBS_BINS
    return np.bincount(idx.ravel(), minlength=rows * bins).reshape(rows, bins).astype(np.int32)


def probs_bins(probs: np.ndarray, classes: tuple[int, ...] | None = None) -> np.ndarray:
    """The flat :func:`count_probs` bin (row * bins + bin) of every event's every output, int64
    [n, rows]: a group's sketch is one ``bincount`` of its events' bins."""
    probs = np.asarray(probs, np.float64)
    if classes is not None:
        cols = np.asarray(classes, np.int64)
        ok = cols < probs.shape[1]
        tracked = np.zeros((probs.shape[0], cols.size))
        tracked[:, ok] = probs[:, cols[ok]]
        other = np.clip(1.0 - tracked.sum(1), 0.0, 1.0)
        probs = np.column_stack([tracked, other])
    rows, bins = probs.shape[1], PROBS_BINS
    return hist.bin_index(PROBS_GRID, probs) + np.arange(rows) * bins


def top_classes(class_counts: np.ndarray, k: int) -> tuple[int, ...]:
    """The ``k`` most frequent classes, ties by class id."""
    counts = np.asarray(class_counts, np.int64)
    order = np.lexsort((np.arange(counts.size), -counts))
    return tuple(int(c) for c in order[:k] if counts[c] > 0)


def fold_classes(counts: np.ndarray, classes: tuple[int, ...]) -> np.ndarray:
    """Counts per listed class plus the rest ("other"), int64 [K + 1] (of each row of a table
    of counts: [rows, K + 1])."""
    counts = np.asarray(counts, np.int64)
    cols, size = np.asarray(classes, np.int64), counts.shape[-1]
    picked = np.concatenate([counts, np.zeros((*counts.shape[:-1], 1), np.int64)], -1)[
        ..., np.where(cols < size, cols, size)]
    return np.concatenate([picked, (counts.sum(-1) - picked.sum(-1))[..., None]], -1)


@dataclass(frozen=True)
class PredictionDrift(DataclassStateCodec):
    """Drift of what the model predicts: class mix, confidence and softmax outputs (BBSD).

    Tests, in three families: ``class_mix``, a chi-square homogeneity test of the predicted-class
    counts against the reference over the reference's ``top_classes`` most frequent classes plus
    "other" (sparse cells pooled so every expected count is at least 5); ``confidence``, a
    two-sample KS test of the confidence; and ``bbsd``, when events carry ``probs``, black-box
    shift detection (Lipton et al. 2018; Rabanser et al. 2019): one KS test per tracked class on
    that class's softmax output, and one on the softmax mass of all other classes. State and
    tests do not grow with the model's head: ``top_classes + 1`` rows whatever its size.

    Significance level: ``EvalContext.alpha`` bounds the probability that this detector alerts on
    stationary data in a window, over all its tests and all ``n_tests`` slices. The families
    share ``alpha`` by weights (``family_weights``, default 0.3 class mix / 0.3 confidence /
    0.4 BBSD, renormalised over the families present), so the class-mix test is judged at
    ``0.3 alpha / n_tests`` whatever the number of classes, not diluted by 21 BBSD tests;
    inside a family p-values are corrected by ``correction`` (Bonferroni by default, as in
    "Failing Loudly"). Weighted Bonferroni across families keeps the total at ``alpha``. A
    significant test alerts when its effect (total variation distance of the class mix, or KS
    statistic) is at least ``min_effect``, else warns. One look: a re-evaluation of the window is
    a fresh test. A slice without its own reference says ``no_reference`` (reason
    "no reference for this slice").

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
    ...     batch = window(0.6 if w >= 3 else 1.0)
    ...     main = det.evaluate(det.observe_with_reference(det.empty(), batch, ctx.reference),
    ...                         ctx)[0]
    ...     print(w, main.status.value, main.details["top_tests"][:1])
    0 ok []
    1 ok []
    2 ok []
    3 alert ['confidence']
    4 alert ['confidence']
    5 alert ['confidence']
    """

    name: ClassVar[str] = "prediction_drift"
    version: ClassVar[int] = 2
    state_type: ClassVar[type] = PredictionDriftState
    wide_columns: ClassVar[frozenset[str]] = frozenset({"probs"})

    correction: str = "bonferroni"  # within a family: "bonferroni" or "bh"
    bbsd: bool = True
    top_classes: int = 20  # classes tracked one by one (the reference's most frequent) + other
    family_weights: tuple[float, ...] = (0.3, 0.3, 0.4)  # class_mix, confidence, bbsd
    min_effect: float = 0.0
    top_k: int = 5

    def __post_init__(self) -> None:
        try:
            weights = tuple(float(w) for w in self.family_weights)
        except (TypeError, ValueError):
            weights = ()
        if len(weights) != len(FAMILIES) or min(weights) < 0 or not 0 < sum(weights) <= 1 + 1e-9:
            raise ConfigError("detectors.params.prediction_drift.family_weights",
                              f"{len(FAMILIES)} weights >= 0 ({', '.join(FAMILIES)}) summing "
                              f"to at most 1, got {self.family_weights!r}")
        object.__setattr__(self, "family_weights", weights)

    def empty(self) -> PredictionDriftState:
        return PredictionDriftState()

    def tracked(self, reference: Reference | None) -> tuple[int, ...]:
        """The classes tracked one by one: the reference's ``top_classes`` (() without one)."""
        pred = None if reference is None else reference.profile.get("prediction")
        if not pred:
            return ()
        if "top_classes" in pred:
            return tuple(int(c) for c in np.asarray(pred["top_classes"])[:self.top_classes])
        return top_classes(pred["class_counts"], self.top_classes)  # a v1 profile

    def observe(self, state: PredictionDriftState, batch: Batch) -> PredictionDriftState:
        """Without a reference only confidence and totals are kept (see the class docstring)."""
        return self.observe_with_reference(state, batch, None)

    def observe_with_reference(self, state: PredictionDriftState, batch: Batch,
                               reference: Reference | None) -> PredictionDriftState:
        return self.observe_groups([state], batch, [np.arange(len(batch))], reference)[0]

    def observe_groups(self, states: Sequence[PredictionDriftState], batch: Batch,
                       groups: Sequence[np.ndarray],
                       reference: Reference | None) -> list[PredictionDriftState]:
        """Every group at once: confidences and softmax outputs are binned once per batch,
        then each group is a ``bincount`` of its rows."""
        classes = self.tracked(reference)
        pred = np.asarray(batch.pred)
        conf = np.asarray(batch.confidence, np.float64)
        finite = np.isfinite(conf)
        conf_bin = np.zeros(len(conf), np.int64)
        conf_bin[finite] = hist.bin_index(hist.UNIT, conf[finite])
        prob_bins = None  # [n, rows of the sketch] flat bin of each output, -1 without probs
        if self.bbsd and batch.probs.shape[1] and np.any(batch.has_probs):
            prob_bins = np.full((len(batch), len(classes) + 1), -1, np.int64)
            prob_bins[batch.has_probs] = probs_bins(batch.probs[batch.has_probs], classes)
        conf_sketches = hist.group_counts(conf_bin, finite, groups)
        every = prob_bins is None or bool((prob_bins[:, 0] >= 0).all())  # no row to mask
        out, empty = [], None  # empty: the state last found empty (groups share one blank)
        for state, rows, conf_sketch, counts in zip(
                states, groups, conf_sketches, fold_classes(group_bincount(  # column 0: -1
                    np.maximum(pred + 1, 0), groups, int(np.max(pred, initial=-1)) + 2)[:, 1:],
                    classes), strict=True):
            lo, conf_counts = conf_sketch or (0, np.zeros(0, dtype=np.int64))
            flat = None if prob_bins is None else prob_bins[rows]
            if not every:
                flat = flat[flat[:, 0] >= 0]
            probs = _zeros_probs() if flat is None or not len(flat) else np.bincount(
                flat.ravel(), minlength=flat.shape[1] * PROBS_BINS).reshape(
                    flat.shape[1], PROBS_BINS).astype(np.int32)
            part = PredictionDriftState(SKETCH_VERSION, classes, len(rows), counts, lo,
                                        conf_counts, probs)
            fresh = state is empty or _is_empty(state)
            empty = state if fresh else empty
            out.append(part if fresh else self.merge(state, part))
        return out

    def merge(self, a: PredictionDriftState, b: PredictionDriftState) -> PredictionDriftState:
        lo, conf = hist.merge(a.conf_lo, a.conf_counts, b.conf_lo, b.conf_counts)
        if a.classes != b.classes:
            # Counts on other class lists never add: the larger list's are kept (a function of
            # the set of parts, so merging stays associative); totals and confidence add.
            hi = a if (len(a.classes) > 0, a.classes) > (len(b.classes) > 0, b.classes) else b
            return replace(hi, n=a.n + b.n, conf_lo=lo, conf_counts=conf)
        k = max(a.probs_counts.shape[0], b.probs_counts.shape[0])
        return PredictionDriftState(SKETCH_VERSION, a.classes, a.n + b.n,
                                    a.class_counts + b.class_counts, lo, conf,
                                    _pad(a.probs_counts, k) + _pad(b.probs_counts, k))

    def loads(self, data: bytes) -> PredictionDriftState:
        raw = decode_value(data)
        if not isinstance(raw, Mapping) or raw.get("sketch") != SKETCH_VERSION:
            return PredictionDriftState(sketch=1)  # a v1 state: one row per class; not compared
        return decode_value(data, PredictionDriftState)

    def evaluate(self, state: PredictionDriftState, context: EvalContext) -> tuple[Finding, ...]:
        if context.reference is None:
            return (Finding.no_reference(self, state.n),)
        own = verdict.slice_profile(context)  # {} for a slice without its own reference
        if not own:
            return (verdict.no_reference(self, state.n, verdict.NO_SLICE_REFERENCE),)
        ref = own.get("prediction")
        if not ref:
            return (verdict.no_reference(self, state.n, "reference profile has no predictions"),)
        if state.sketch != SKETCH_VERSION:
            f = Finding.insufficient(self, 0, context.min_samples)
            return (replace(f, details={"reason": "a sketch v1 state (before top-K classes)"}),)
        n = int(state.class_counts.sum())
        if n < context.min_samples or float(ref["n"]) < context.min_samples:
            return (Finding.insufficient(self, n, context.min_samples),)
        rows = []
        if state.classes == self.tracked(context.reference):
            rows.append(self._classes(state, ref))
        conf = self._confidence(state, ref["confidence"], context.min_samples)
        rows += [conf] if conf else []
        if self.bbsd:
            rows += self._bbsd(state, ref, context.min_samples)
        return self._findings(rows, n, context)

    @staticmethod
    def _classes(s: PredictionDriftState, ref: Mapping[str, Any]) -> dict[str, Any]:
        r = fold_classes(ref["class_counts"], s.classes)
        w = s.class_counts
        stat, p, dof = uni.chi2_homogeneity(*uni.pool_sparse(r, w, ordered=False))
        pr, pw = r / max(r.sum(), 1), w / max(w.sum(), 1)
        return {"test": "chi2", "subject": "class_distribution", "family": "class_mix",
                "statistic": stat, "p_value": p, "dof": dof,
                "effect": 0.5 * float(np.abs(pr - pw).sum()), "n": int(w.sum()),
                "histogram": {"classes": [*map(str, s.classes), "other"], "reference": pr,
                              "window": pw}}

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
        return {"test": "ks", "subject": "confidence", "family": "confidence", "statistic": d,
                "p_value": p, "effect": d, "n": int(w.sum()), "n_ref": int(r.sum()),
                "histogram": {"edges": np.asarray(ref["edges"]), "reference": rq / r.sum(),
                              "window": wq / w.sum()}}

    @staticmethod
    def _bbsd(s: PredictionDriftState, ref: Mapping[str, Any],
              need: int) -> list[dict[str, Any]]:
        win, ref_probs = s.probs_counts, np.asarray(ref["probs_counts"])
        if win.shape[0] != len(s.classes) + 1 or not s.classes or ref_probs.shape[0] == 0:
            return []
        ref_top = tuple(int(c) for c in np.asarray(ref.get("top_classes", ())))
        names = [f"bbsd[{c}]" for c in s.classes]
        if ref_top == s.classes:  # same tracked list: every row, "other" too
            pairs = list(range(len(s.classes) + 1))
            rows, names = ref_probs, [*names, "bbsd[other]"]
        else:  # the slice's own list, or a v1 profile with one row per class
            where = ({c: i for i, c in enumerate(ref_top)} if ref_top
                     else {c: c for c in range(ref_probs.shape[0])})
            pairs = [i for i, c in enumerate(s.classes) if c in where]
            rows = ref_probs[[where[s.classes[i]] for i in pairs]]
            names = [names[i] for i in pairs]
        if not pairs:
            return []
        win = win[pairs]
        n, m = int(rows[0].sum()), int(win[0].sum())
        if min(n, m) < need:
            return []
        # All classes at once: the CDF gap of every class over the shared logit grid.
        gap = np.abs(np.cumsum(rows, 1) / n - np.cumsum(win, 1) / m).max(1)
        p_values = uni.ks_pvalues(gap, n, m)  # one scipy call for every class
        return [{"test": "ks", "subject": name, "family": "bbsd", "statistic": d,
                 "p_value": p, "effect": d, "n": m, "n_ref": n}  # tolist: Python floats
                for name, d, p in zip(names, gap.tolist(), np.asarray(p_values).tolist(),
                                       strict=True)]

    def _weighted(self, rows: list[dict[str, Any]], ctx: EvalContext) -> np.ndarray:
        """Weighted Bonferroni across families, ``correction`` inside each: every row gets
        ``p_adjusted`` (compared with ``alpha``), ``rejected`` and its ``threshold``."""
        weights = dict(zip(FAMILIES, self.family_weights, strict=True))
        present = {r["family"] for r in rows}
        total = sum(w for f, w in weights.items() if f in present) or 1.0
        for fam in present:
            part = [r for r in rows if r["family"] == fam]
            weight = weights[fam] / total
            p_raw = np.array([r["p_value"] for r in part])
            p_adj, rejected, crit = verdict.family(p_raw, replace(ctx, alpha=ctx.alpha * weight),
                                                   self.correction)
            for r, pa, rej, thr in zip(part, p_adj.tolist(), rejected.tolist(),
                                       verdict.thresholds(part, crit), strict=True):
                r.update(p_adjusted=min(1.0, pa / weight) if weight else 1.0,
                         rejected=rej, threshold=thr, family_weight=weight)
        return np.array([r["p_adjusted"] for r in rows])

    def _findings(self, rows: list[dict[str, Any]], n: int,
                  ctx: EvalContext) -> tuple[Finding, ...]:
        p_adj = self._weighted(rows, ctx)
        rejected = np.array([r["rejected"] for r in rows], bool)
        effect_ok = np.array([r["effect"] >= self.min_effect for r in rows])
        for row, rej, ok in zip(rows, rejected.tolist(), effect_ok.tolist(), strict=True):
            row.update(alarm=rej and ok, status=verdict.sub_status(rej, ok))
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
                   "family_weights": dict(zip(FAMILIES, self.family_weights, strict=True)),
                   "top_tests": [r["subject"] for r in ranked if r["rejected"]][:self.top_k],
                   "tests": tables,
                   "histograms": {r["subject"]: r["histogram"] for r in rows if "histogram" in r}}
        main = verdict.main_finding(self, ctx, p_adj=p_adj, rejected=rejected,
                                    effect_ok=effect_ok, n=n,
                                    test=f"chi2+ks+bbsd/weighted-{self.correction}",
                                    details=details)
        return (main, *subs)

    def _sub(self, r: dict[str, Any]) -> Finding:
        return Finding(self.name, self.version, r["status"], score=r["statistic"],
                       threshold=r["threshold"], p_value=r["p_value"], n=r["n"],
                       subject=r["subject"], test=r["test"],
                       details=verdict.jsonable({k: v for k, v in r.items()
                                                 if k not in ("status", "histogram")}))


def _rank(status: Any) -> int:
    return ["ok", "warn", "alert"].index(status.value)
