"""Feature drift: per-feature two-sample tests of the inputs' statistics against the reference."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from detectors import _verdict as verdict
from detectors._equality import ValueEquality
from detectors.stats import categories as cats
from detectors.stats import histograms as hist
from detectors.stats import univariate as uni
from monitor.contract import Batch, DataclassStateCodec, EvalContext, Finding, Reference

UNIT_FEATURES = ("confidence",)  # probabilities: counted on the logit grid


@dataclass(frozen=True, slots=True, eq=False)
class FeatureDriftState(ValueEquality):
    """Integer sketches only, so merging is exact. Features with no value yet are absent."""

    n: int = 0  # events observed
    num_lo: Mapping[str, int] = field(default_factory=dict)  # feature -> first grid bin
    num_counts: Mapping[str, np.ndarray] = field(default_factory=dict)  # feature -> int64 counts
    cat_names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # attr -> kept names
    cat_counts: Mapping[str, np.ndarray] = field(default_factory=dict)  # attr -> int64 counts
    cat_other: Mapping[str, int] = field(default_factory=dict)  # attr -> count of dropped names


def grid_for(feature: str) -> hist.Grid:
    return hist.UNIT if feature in UNIT_FEATURES else hist.REAL


def numeric_columns(batch: Batch) -> dict[str, np.ndarray]:
    """The numeric features of a batch by name: ``confidence``, ``latency_ms``, ``image.*``."""
    cols = {"confidence": batch.confidence, "latency_ms": batch.latency_ms}
    cols.update({f"image.{k}": v for k, v in batch.image.items()})
    return cols


def numeric_entry(grid: hist.Grid, lo: int, counts: np.ndarray, n_rows: int,
                  n_bins: int) -> dict[str, Any]:
    """A ``numeric.<f>`` reference entry from a fine-grid sketch (see detectors.reference)."""
    cuts = hist.quantile_cuts(counts, n_bins)
    ends = np.append(cuts, counts.size)
    all_edges = hist.bin_edges(grid, lo, counts.size)
    mean, std = hist.moments(grid, lo, counts)
    n = int(counts.sum())
    return {"grid": grid.spec, "grid_lo": float(lo), "grid_counts": counts.astype(np.int64),
            "cut_index": (cuts + lo).astype(np.int64), "edges": all_edges[ends],
            "counts": hist.fold(counts, cuts), "n": float(n), "n_missing": float(n_rows - n),
            "mean": mean, "std": std}


def categorical_entries(s: FeatureDriftState) -> dict[str, Any]:
    """The ``categorical`` reference entries of a state (see detectors.reference)."""
    out = {}
    for k in s.cat_counts:
        counts = s.cat_counts[k]
        n = int(counts.sum()) + s.cat_other[k]
        out[k] = {"categories": np.asarray(s.cat_names[k], dtype=str), "counts": counts,
                  "other": float(s.cat_other[k]), "n": float(n), "n_missing": float(s.n - n)}
    return out


@dataclass(frozen=True)
class FeatureDrift(DataclassStateCodec):
    """Drift of ``image.*``, ``confidence`` and categorical ``attrs`` (``latency_ms`` only when
    named in ``features``: by default it is excluded, the latency SLOs cover it).

    Test: numeric features are counted on a fine fixed grid (0.2 % relative resolution; see
    :mod:`detectors.stats.histograms`) and compared with the reference by a two-sample KS test
    (``numeric_test="ks"``), or by a chi-square test on the reference's quantile bins
    (``"chi2"``); categorical ``attrs`` by a chi-square homogeneity test over categories. PSI,
    Jensen-Shannon distance (on the reference's quantile bins) and Wasserstein-1 (normalised by
    the reference standard deviation) are reported as effect sizes for every feature.

    Significance level: ``EvalContext.alpha`` is the probability that this detector alerts on
    stationary data in a window, over all features and all ``n_tests`` slices together: the
    features' p-values are corrected by ``correction`` (``"bh"`` Benjamini-Hochberg or
    ``"bonferroni"``) and then multiplied by ``n_tests``. A feature whose test is significant
    after correction alerts when its ``effect`` (``"psi"``, ``"js"`` or ``"wasserstein"``) is at
    least ``min_effect``, and warns otherwise.

    Example
    -------
    A stationary stream, then brightness shifts by half a standard deviation from window 3 on:

    >>> from detectors.reference import build_reference_profile
    >>> from detectors.testing import context, make_batch
    >>> rng = np.random.default_rng(7)
    >>> def window(shift):
    ...     return make_batch(500, rng, image={"brightness": rng.normal(0.5 + shift, 0.1, 500)})
    >>> ctx = context(build_reference_profile([window(0.0) for _ in range(4)]), alpha=0.01)
    >>> det = FeatureDrift()
    >>> for w in range(6):
    ...     main = det.evaluate(det.observe(det.empty(), window(0.05 if w >= 3 else 0.0)), ctx)[0]
    ...     top = main.details["top_features"][0] if main.status.value == "alert" else "-"
    ...     print(w, main.status.value, top)
    0 ok -
    1 ok -
    2 ok -
    3 alert image.brightness
    4 alert image.brightness
    5 alert image.brightness
    """

    name: ClassVar[str] = "feature_drift"
    version: ClassVar[int] = 2
    state_type: ClassVar[type] = FeatureDriftState

    features: tuple[str, ...] | None = None  # numeric features; None: all found
    attrs: tuple[str, ...] | None = None  # categorical attrs; None: all found
    # latency is load-driven and covered by the latency SLOs (burn rates page on it); as a drift
    # feature it alarmed on every busy hour. Name it in ``features`` to test it anyway.
    exclude: tuple[str, ...] = ("latency_ms",)
    numeric_test: str = "ks"  # "ks" or "chi2"
    correction: str = "bh"  # "bh" or "bonferroni"
    effect: str = "psi"  # "psi", "js" or "wasserstein" (normalised)
    min_effect: float = 0.0
    max_categories: int = 256
    top_k: int = 5

    def empty(self) -> FeatureDriftState:
        return FeatureDriftState()

    def _wanted(self, name: str, allow: tuple[str, ...] | None) -> bool:
        if allow is not None and name in allow:
            return True
        return name not in self.exclude and allow is None

    def observe(self, state: FeatureDriftState, batch: Batch) -> FeatureDriftState:
        return self.observe_groups([state], batch, [np.arange(len(batch))], None)[0]

    def observe_groups(self, states: Sequence[FeatureDriftState], batch: Batch,
                       groups: Sequence[np.ndarray],
                       reference: Reference | None = None) -> list[FeatureDriftState]:
        """Every group at once: each value is binned (numbers) or coded (categories) once per
        batch, then all groups' sketches of a feature are one ``bincount``."""
        numeric = []  # (name, bin of each row, finite mask)
        for name, values in numeric_columns(batch).items():
            if self._wanted(name, self.features):
                x = np.asarray(values, dtype=np.float64)
                finite = np.isfinite(x)
                idx = np.zeros(len(x), np.int64)
                idx[finite] = hist.bin_index(grid_for(name), x[finite])
                numeric.append((name, idx, finite))
        categorical = []  # (name, distinct values, code of each row)
        for attr, values in batch.attrs.items():
            name = f"attrs.{attr}"
            if self._wanted(name, self.attrs):
                categorical.append((name, *cats.codes(values)))
        num_sketches = list(zip((name for name, _, _ in numeric), hist.group_counts_many(
            [(idx, finite) for _, idx, finite in numeric], groups), strict=True))
        cat_sketches = [(name, cats.group_count_codes(distinct, hashes, code, groups,
                                                      self.max_categories))
                        for name, distinct, hashes, code in categorical]
        out = []
        for i, (state, rows) in enumerate(zip(states, groups, strict=True)):
            lo, counts, names, ccounts, other = {}, {}, {}, {}, {}
            for name, per_group in num_sketches:
                if per_group[i] is not None:
                    lo[name], counts[name] = per_group[i]
            for name, per_group in cat_sketches:
                if per_group[i][1].size or per_group[i][2]:
                    names[name], ccounts[name], other[name] = per_group[i]
            part = FeatureDriftState(len(rows), dict(sorted(lo.items())),
                                     dict(sorted(counts.items())), dict(sorted(names.items())),
                                     dict(sorted(ccounts.items())), dict(sorted(other.items())))
            # merge(empty, part) is part (its sketches are canonical already): skip the re-sort
            fresh = state.n == 0 and not state.num_counts and not state.cat_counts
            out.append(part if fresh else self.merge(state, part))
        return out

    def merge(self, a: FeatureDriftState, b: FeatureDriftState) -> FeatureDriftState:
        lo, counts = dict(a.num_lo), dict(a.num_counts)
        for k in b.num_counts:
            if k in counts:
                lo[k], counts[k] = hist.merge(lo[k], counts[k], b.num_lo[k], b.num_counts[k])
            else:
                lo[k], counts[k] = b.num_lo[k], b.num_counts[k]
        names, ccounts, other = dict(a.cat_names), dict(a.cat_counts), dict(a.cat_other)
        for k in b.cat_counts:
            mine = (names.get(k, ()), ccounts.get(k, np.zeros(0, np.int64)), other.get(k, 0))
            names[k], ccounts[k], other[k] = cats.merge(
                mine, (b.cat_names[k], b.cat_counts[k], b.cat_other[k]), self.max_categories)
        return FeatureDriftState(a.n + b.n, dict(sorted(lo.items())), dict(sorted(counts.items())),
                                 dict(sorted(names.items())), dict(sorted(ccounts.items())),
                                 dict(sorted(other.items())))

    def reference_from_state(self, state: FeatureDriftState, n_bins: int = 10) -> dict[str, Any]:
        """The ``numeric`` and ``categorical`` parts of a reference profile from a (warm-up)
        window state -- the same entries ``vitmon reference capture`` builds -- for a slice
        without a reference of its own."""
        return {"n_events": float(state.n),
                "numeric": {k: numeric_entry(grid_for(k), state.num_lo[k], state.num_counts[k],
                                             state.n, n_bins) for k in state.num_counts},
                "categorical": categorical_entries(state)}

    def state_events(self, state: FeatureDriftState) -> int:
        return state.n

    def evaluate(self, state: FeatureDriftState, context: EvalContext) -> tuple[Finding, ...]:
        if context.reference is None:
            return (Finding.no_reference(self, state.n),)
        profile = verdict.slice_profile(context)
        if not profile:
            return (verdict.no_reference(self, state.n, verdict.NO_SLICE_REFERENCE),)
        num_ref, cat_ref = profile.get("numeric", {}), profile.get("categorical", {})
        if not num_ref and not cat_ref:
            return (verdict.no_reference(self, state.n, "reference profile has no features"),)
        if state.n < context.min_samples:
            return (Finding.insufficient(self, state.n, context.min_samples),)
        rows, skipped = [], {}
        for name in sorted(state.num_counts):
            row = self._numeric(name, state, num_ref.get(name), context.min_samples)
            (rows.append(row) if "p_value" in row else skipped.update({name: row["reason"]}))
        for name in sorted(state.cat_counts):
            row = self._categorical(name, state, cat_ref.get(name), context.min_samples)
            (rows.append(row) if "p_value" in row else skipped.update({name: row["reason"]}))
        if not rows:
            return (Finding.insufficient(self, state.n, context.min_samples),)
        return self._findings(rows, skipped, state.n, context)

    def _numeric(self, name: str, s: FeatureDriftState, ref: Mapping[str, Any] | None,
                 need: int) -> dict[str, Any]:
        if ref is None:
            return {"reason": "not in the reference profile"}
        grid = grid_for(name)
        if ref["grid"] != grid.spec:
            return {"reason": f"reference grid {ref['grid']} != {grid.spec}; rebuild it"}
        lo, r, w = hist.align(int(ref["grid_lo"]), np.asarray(ref["grid_counts"]),
                              s.num_lo[name], s.num_counts[name])
        n, m = int(r.sum()), int(w.sum())
        if min(n, m) < need:
            return {"reason": f"{m} window / {n} reference values, need {need}"}
        cuts = np.asarray(ref["cut_index"], np.int64) - lo
        cuts[0] = 0  # window values under the reference minimum belong to the first bin
        rq, wq = hist.fold(r, cuts), hist.fold(w, cuts)
        std = float(ref["std"])
        w1 = uni.wasserstein_counts(hist.bin_edges(grid, lo, r.size), r, w)
        row = {"feature": name, "kind": "numeric", "n": m, "n_ref": n,
               "psi": uni.psi(rq, wq), "js": uni.js_distance(rq, wq), "wasserstein": w1,
               "wasserstein_norm": w1 / std if std > 0 else float("nan"),
               "histogram": {"edges": np.asarray(ref["edges"]), "reference": rq / n,
                             "window": wq / m}}
        if self.numeric_test == "chi2":
            stat, p, dof = uni.chi2_homogeneity(*uni.pool_sparse(rq, wq, ordered=True))
            row.update(test="chi2", statistic=stat, p_value=p, dof=dof)
        else:
            stat, p = uni.ks_counts(r, w)
            row.update(test="ks", statistic=stat, p_value=p)
        return row

    def _categorical(self, name: str, s: FeatureDriftState, ref: Mapping[str, Any] | None,
                     need: int) -> dict[str, Any]:
        if ref is None:
            return {"reason": "not in the reference profile"}
        cols, r, w = cats.align(ref["categories"], ref["counts"], int(ref["other"]),
                                s.cat_names[name], s.cat_counts[name], s.cat_other[name])
        n, m = int(r.sum()), int(w.sum())
        if min(n, m) < need:
            return {"reason": f"{m} window / {n} reference values, need {need}"}
        stat, p, dof = uni.chi2_homogeneity(*uni.pool_sparse(r, w, ordered=False))
        pr, pw = r / n, w / m
        top = np.argsort(-np.abs(pw - pr), kind="stable")[:20]  # the UI shows the biggest moves
        return {"feature": name, "kind": "categorical", "n": m, "n_ref": n, "test": "chi2",
                "statistic": stat, "p_value": p, "dof": dof, "psi": uni.psi(r, w),
                "js": uni.js_distance(r, w), "wasserstein": None, "wasserstein_norm": None,
                "histogram": {"categories": [cols[i] for i in top], "reference": pr[top],
                              "window": pw[top]}}

    def _findings(self, rows: list[dict[str, Any]], skipped: dict[str, str], n: int,
                  ctx: EvalContext) -> tuple[Finding, ...]:
        p_adj, rejected, crit = verdict.family(np.array([r["p_value"] for r in rows]), ctx,
                                               self.correction)
        key = "wasserstein_norm" if self.effect == "wasserstein" else self.effect
        effect_ok = np.array([(r[key] or 0.0) >= self.min_effect for r in rows])
        subs, plain = [], {}  # plain: each row's details (JSON-ready) by id, for the main's
        # Python scalars (tolist), not numpy ones: jsonable gives the same values for both
        for row, pa, rej, ok, thr in zip(rows, p_adj.tolist(), rejected.tolist(),
                                         effect_ok.tolist(), verdict.thresholds(rows, crit),
                                         strict=True):
            status = verdict.sub_status(rej, ok)
            row.update(p_adjusted=pa, threshold=thr, alarm=rej and ok, status=status.value)
            plain[id(row)] = verdict.jsonable({k: v for k, v in row.items() if k != "histogram"})
            subs.append(Finding(self.name, self.version, status, score=row["statistic"],
                                threshold=thr, p_value=row["p_value"], n=row["n"],
                                subject=row["feature"], test=row["test"],
                                details=plain[id(row)]))
        ranked = sorted(rows, key=lambda r: (not r["alarm"], -verdict.evidence(r["p_value"]),
                                             -(r[key] or 0.0)))
        details = {"correction": self.correction, "effect": self.effect,
                   "min_effect": self.min_effect, "n_features_tested": len(rows),
                   "top_features": [r["feature"] for r in ranked[:self.top_k]],
                   "features": [plain[id(r)] for r in ranked],
                   "histograms": {r["feature"]: r["histogram"] for r in ranked},
                   "skipped": skipped}
        tests = "+".join(sorted({r["test"] for r in rows}))
        main = verdict.main_finding(self, ctx, p_adj=p_adj, rejected=rejected,
                                    effect_ok=effect_ok, n=n, test=f"{tests}/{self.correction}",
                                    details=details)
        return (main, *subs)

