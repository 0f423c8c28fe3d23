"""Embedding drift: kernel MMD on PCA-reduced embeddings, centroid distance, domain classifier."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from detectors import _verdict as verdict
from detectors._equality import ValueEquality
from detectors.stats import embeddings as emb
from detectors.stats.domain_classifier import domain_classifier_test
from detectors.stats.mmd import median_heuristic, mmd_permutation_test, permutation_threshold
from monitor.contract import Batch, DataclassStateCodec, EvalContext, Finding, Status


@dataclass(frozen=True, slots=True, eq=False)
class EmbeddingDriftState(ValueEquality):
    """Running moments of every embedding plus a bounded bottom-k sample (by event-id hash)."""

    n: int = 0  # embeddings observed
    total: np.ndarray = field(default_factory=lambda: np.zeros(0))  # float64 [D] sum
    total_sq: np.ndarray = field(default_factory=lambda: np.zeros(0))  # float64 [D] sum of squares
    hashes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))  # ascending
    ids: tuple[str, ...] = ()  # event ids of the sample, same order
    sample: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # [k, D]


def _add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return b.copy() if a.size == 0 else a if b.size == 0 else a + b


def merge_samples(a: EmbeddingDriftState, b: EmbeddingDriftState,
                  k: int) -> tuple[np.ndarray, tuple[str, ...], np.ndarray]:
    """Union of two bottom-k samples, keeping the ``k`` smallest hashes."""
    if b.hashes.size == 0:
        return a.hashes, a.ids, a.sample
    if a.hashes.size == 0:
        return b.hashes, b.ids, b.sample
    hashes = np.concatenate([a.hashes, b.hashes])
    ids = np.asarray(a.ids + b.ids, dtype=object)
    keep = emb.bottom_k(hashes, ids, k)
    return hashes[keep], tuple(ids[keep].tolist()), np.concatenate([a.sample, b.sample])[keep]


@dataclass(frozen=True)
class EmbeddingDrift(DataclassStateCodec):
    """Drift of the model's embeddings (e.g. the ViT's CLS vector).

    Test: the window's embedding sample (a bounded bottom-k sample of ``sample_size`` events,
    chosen by a hash of ``event_id``, so it is uniform, order-independent and mergeable) and the
    reference's sample are projected on the reference's first ``n_components`` principal axes;
    the unbiased kernel MMD^2 between them (Gaussian kernel, median-heuristic bandwidth from the
    reference) is tested by ``n_permutations`` random permutations of the pooled sample, all
    computed by one batched matmul. The centroid cosine distance between the window's mean
    embedding (over all events, not only the sample) and the reference's is always reported; an
    optional ``centroid_threshold`` turns it into a warning. When MMD alerts (``domain_classifier=
    "on_alarm"``) a cross-validated logistic-regression domain classifier explains the shift: its
    AUC and the window events that look most "new".

    Significance level: ``EvalContext.alpha`` bounds the probability of an alert on stationary
    data in a window over all ``n_tests`` slices: a slice alerts when its permutation p-value is
    at most ``alpha / n_tests``. The number of permutations is raised to ``n_tests / alpha - 1``
    when needed so that level is reachable at all, up to ``max_permutations``; beyond that the
    test is conservative (it cannot reject, it never over-alarms). The default of 500
    permutations, not 100, is for power: at ``alpha = 0.01`` a 100-permutation test rejects only
    when the observed MMD^2 beats all 100 permutations, so a window whose exact p-value is 0.005
    is missed 40 % of the time; 500 permutations cost a few more milliseconds (one matmul).

    Example
    -------
    768-dimensional embeddings driven by 16 latent factors plus noise (as a ViT's CLS vectors
    are dominated by a few directions); one factor's mean moves by one standard deviation from
    window 3 on:

    >>> from detectors.reference import ProfileConfig, build_reference_profile
    >>> from detectors.testing import context, make_batch
    >>> rng = np.random.default_rng(11)
    >>> mix = rng.normal(0, 1, (16, 768))
    >>> def window(shift, n=300):
    ...     z = rng.normal(0, 1, (n, 16))
    ...     z[:, 0] += shift
    ...     return make_batch(n, rng, embedding=z @ mix + rng.normal(0, 1, (n, 768)))
    >>> profile = build_reference_profile([window(0.0) for _ in range(8)], ProfileConfig(
    ...     embedding_sample_size=600, pca_fit_size=600))
    >>> ctx = context(profile, alpha=0.01)
    >>> det = EmbeddingDrift()
    >>> for w in range(6):
    ...     f = det.evaluate(det.observe(det.empty(), window(1.0 if w >= 3 else 0.0)), ctx)
    ...     print(w, f[0].status.value, f[0].p_value <= 0.01)
    0 ok False
    1 ok False
    2 ok False
    3 alert True
    4 alert True
    5 alert True
    """

    name: ClassVar[str] = "embedding_drift"
    version: ClassVar[int] = 1
    state_type: ClassVar[type] = EmbeddingDriftState

    sample_size: int = 512
    n_components: int = 32
    n_permutations: int = 500
    max_permutations: int = 2000
    seed: int = 0
    min_effect: float = 0.0  # on MMD^2
    centroid_threshold: float | None = None  # cosine distance that warns; None: report only
    domain_classifier: str = "on_alarm"  # "on_alarm", "always" or "never"
    top_new: int = 10
    projection_points: int = 200

    def empty(self) -> EmbeddingDriftState:
        return EmbeddingDriftState()

    def observe(self, state: EmbeddingDriftState, batch: Batch) -> EmbeddingDriftState:
        rows = np.flatnonzero(batch.has_embedding) if batch.embedding.shape[1] else []
        if len(rows) == 0:
            return state
        x = np.asarray(batch.embedding[rows], np.float32)
        ids = np.asarray(batch.event_id[rows], dtype=object)
        hashes = emb.event_hashes(ids)
        keep = emb.bottom_k(hashes, ids, self.sample_size)
        x64 = x.astype(np.float64)
        part = EmbeddingDriftState(len(rows), x64.sum(0), (x64 * x64).sum(0), hashes[keep],
                                   tuple(ids[keep].tolist()), x[keep])
        return self.merge(state, part)

    def merge(self, a: EmbeddingDriftState, b: EmbeddingDriftState) -> EmbeddingDriftState:
        if a.n and b.n and a.total.size != b.total.size:
            raise ValueError(f"embedding dimension {a.total.size} != {b.total.size}")
        hashes, ids, sample = merge_samples(a, b, self.sample_size)
        return EmbeddingDriftState(a.n + b.n, _add(a.total, b.total), _add(a.total_sq, b.total_sq),
                                   hashes, ids, sample)

    def evaluate(self, state: EmbeddingDriftState, context: EvalContext) -> tuple[Finding, ...]:
        if context.reference is None:
            return (Finding.no_reference(self, state.n),)
        ref = verdict.slice_profile(context).get("embedding")
        if not ref:
            return (verdict.no_reference(self, state.n, "reference profile has no embeddings"),)
        if len(state.ids) < context.min_samples:
            return (Finding.insufficient(self, len(state.ids), context.min_samples),)
        if state.total.size != np.asarray(ref["mean"]).size:
            return (verdict.no_reference(self, state.n, f"reference embedding dimension "
                                         f"{np.asarray(ref['mean']).size} != {state.total.size}"),)
        q = min(self.n_components, np.asarray(ref["pca_components"]).shape[1])
        basis = np.asarray(ref["pca_components"])[:, :q]
        x_ref = emb.project(ref["sample"], ref["pca_mean"], basis)
        x_win = emb.project(state.sample, ref["pca_mean"], basis)
        a_key = verdict.alpha_per_key(context)
        b = min(self.max_permutations, max(self.n_permutations, math.ceil(1 / a_key - 1e-9) - 1))
        seed = verdict.key_seed(self.seed, context.key)
        sigma2 = (float(np.asarray(ref["bandwidth_sigma2"])[q - 1]) if "bandwidth_sigma2" in ref
                  else median_heuristic(x_ref))
        res = mmd_permutation_test(x_ref, x_win, b, seed, sigma2)
        p_adj, rejected, _ = verdict.family(np.array([res.p_value]), context, "bonferroni")
        effect_ok = np.array([res.mmd2 >= self.min_effect])
        threshold = permutation_threshold(res.null, a_key)
        centroid = emb.cosine_distance(state.total / state.n, np.asarray(ref["mean"]))
        details: dict[str, Any] = {
            "mmd2": res.mmd2, "mmd2_threshold": threshold, "p_value_raw": res.p_value,
            "n_permutations": b, "bandwidth_sigma2": res.sigma2, "n_components": q,
            "n_ref": len(x_ref), "n_window_sample": len(x_win), "n_window": state.n,
            "centroid_cosine_distance": centroid,
            "component_shift": self._component_shift(state, ref, basis),
            "projection": self._projection(x_ref, x_win, state.ids)}
        run_dc = self.domain_classifier == "always" or (
            self.domain_classifier == "on_alarm" and bool(rejected[0]))
        if run_dc:
            details["domain_classifier"] = self._explain(x_ref, x_win, state.ids, seed)
        main = verdict.main_finding(self, context, p_adj=p_adj, rejected=rejected,
                                    effect_ok=effect_ok, n=state.n, test="mmd-permutation",
                                    details=details)
        mmd = Finding(self.name, self.version, main.status, score=res.mmd2, threshold=threshold,
                      p_value=res.p_value, n=len(x_win), subject="mmd", test="mmd-permutation")
        over = self.centroid_threshold is not None and centroid > self.centroid_threshold
        cos = Finding(self.name, self.version, Status.WARN if over else Status.OK,
                      score=centroid, threshold=self.centroid_threshold, n=state.n,
                      subject="centroid", test="cosine-distance")
        return (main, mmd, cos)

    @staticmethod
    def _component_shift(s: EmbeddingDriftState, ref: Any, basis: np.ndarray) -> list[float]:
        """Window mean minus reference mean on the first 5 axes, in reference standard
        deviations: which directions moved."""
        mean_win = (s.total / s.n - np.asarray(ref["pca_mean"])) @ basis[:, :5]
        mean_ref = (np.asarray(ref["mean"]) - np.asarray(ref["pca_mean"])) @ basis[:, :5]
        sd = np.sqrt(np.asarray(ref["pca_explained_variance"])[:mean_win.size])
        return ((mean_win - mean_ref) / np.where(sd > 0, sd, 1.0)).tolist()

    def _projection(self, x_ref: np.ndarray, x_win: np.ndarray, ids: tuple[str, ...]) -> dict:
        # Samples are in hash order, so their first rows are uniform subsamples.
        k = self.projection_points
        return {"axes": ["pc1", "pc2"], "reference": x_ref[:k, :2].round(4),
                "window": x_win[:k, :2].round(4), "window_ids": list(ids[:k])}

    def _explain(self, x_ref: np.ndarray, x_win: np.ndarray, ids: tuple[str, ...],
                 seed: int) -> dict[str, Any]:
        dc = domain_classifier_test(x_ref, x_win, seed=seed % (2**32))
        top = np.argsort(-dc.window_scores, kind="stable")[:self.top_new]
        return {"auc": dc.auc, "p_value": dc.p_value,
                "most_new": [{"event_id": ids[i], "score": float(dc.window_scores[i])}
                             for i in top]}
