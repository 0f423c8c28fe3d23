"""Embedding drift: Hotelling's T^2 on a kilobyte sketch of the embeddings (see stats.sketch)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from detectors import _verdict as verdict
from detectors._equality import ValueEquality
from detectors._memo import PerProfile
from detectors.stats import embeddings as emb
from detectors.stats import hotelling
from detectors.stats import sketch as sk
from detectors.stats.domain_classifier import domain_classifier_test
from monitor.contract import (
    Batch,
    DataclassStateCodec,
    EvalContext,
    Finding,
    Reference,
    Status,
    decode_value,
)

SKETCH_VERSION = 2  # 1: the 512-row raw embedding sample of the MMD permutation test (retired)


@dataclass(frozen=True, slots=True, eq=False)
class EmbeddingDriftState(ValueEquality):
    """Exact fixed-point sums of the sketch features plus a small bottom-k sample of them.

    Bytes do not grow with traffic: ``p`` sums, ``p(p+1)/2`` product sums and ``sample_size`` x
    ``p`` float16 features (p = 17 by default: ~17 KiB serialised at any embedding width).
    """

    sketch: int = SKETCH_VERSION  # state format; a v1 checkpoint loads as 1 (never compared)
    basis: int = 0  # fingerprint of the reference basis the sums are on (0: none)
    n: int = 0  # events in the sums
    n_unprojected: int = 0  # events seen without that basis (no reference, another one, v1 state)
    total: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # [p]
    outer: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # [p(p+1)/2]
    hashes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))  # ascending
    ids: tuple[str, ...] = ()  # event ids of the sample, same order
    sample: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float16))  # [k, p]


def _add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return b.copy() if a.size == 0 else a if b.size == 0 else a + b


@dataclass(frozen=True)
class EmbeddingDrift(DataclassStateCodec):
    """Drift of the model's embeddings (e.g. the ViT's CLS vector).

    Test: every embedding is mapped to ``p = n_components + 1 + 2 * n_frequencies`` features on
    the reference's basis (:mod:`detectors.stats.sketch`: whitened coordinates on the reference's
    first ``n_components`` principal axes, the log RMS residual off them, and cos/sin of
    ``n_frequencies`` random Fourier frequencies); a window keeps their count, sum and sum of
    outer products as exact integers, so merging windows or partitions is addition. At
    evaluation, the window's mean feature vector is compared with the reference's (the features
    of the reference profile's embedding sample, the slice's own when it has one) by the
    two-sample Hotelling T^2 with its F null (:mod:`detectors.stats.hotelling`) when the window
    has at least ``min_f_events`` events; below that, by a permutation test of the same
    statistic on the window's events (all of them are in the bottom-k ``sample_size`` sample)
    with ``max(n_permutations, ceil(n_tests / alpha))`` permutations, so the level is reachable
    for any slice count up to ``max_permutations * alpha``. The centroid cosine distance
    (reference vs window mean on the principal subspace) is always reported; an optional
    ``centroid_threshold`` turns it into a warning. When the test alerts
    (``domain_classifier="on_alarm"``) a cross-validated logistic-regression domain classifier
    on the sketch features explains the shift: its AUC and the window events that look most new.

    The sums are on one reference's basis: the core observes through
    :meth:`observe_with_reference`; events seen with no active reference (or another one) are
    only counted (``n_unprojected``), and a window with too few events on the active basis says
    ``insufficient_data``. A slice without its own reference says ``no_reference`` (reason
    "no reference for this slice"), never a verdict against the whole version.

    Significance level: ``EvalContext.alpha`` bounds the probability of an alert on stationary
    data in a window over all ``n_tests`` slices (Bonferroni: a slice alerts when its p-value is
    at most ``alpha / n_tests``). One look: each evaluation is a fresh test of the window as it
    stands; re-evaluations after late events are not corrected for. Measured false-alarm rates
    are in docs/drift.md (``bench/drift.py``).

    Example
    -------
    768-dimensional embeddings driven by 16 latent factors plus noise (as a ViT's CLS vectors
    are dominated by a few directions); one factor's mean moves by 0.7 standard deviations from
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
    ...     state = det.observe_with_reference(det.empty(), window(0.7 if w >= 3 else 0.0),
    ...                                        ctx.reference)
    ...     f = det.evaluate(state, ctx)
    ...     print(w, f[0].status.value, f[0].test, len(det.dumps(state)) < 64 * 1024)
    0 ok hotelling-t2-f True
    1 ok hotelling-t2-f True
    2 ok hotelling-t2-f True
    3 alert hotelling-t2-f True
    4 alert hotelling-t2-f True
    5 alert hotelling-t2-f True
    """

    name: ClassVar[str] = "embedding_drift"
    version: ClassVar[int] = 2
    state_type: ClassVar[type] = EmbeddingDriftState
    wide_columns: ClassVar[frozenset[str]] = frozenset({"embedding"})

    n_components: int = 8  # 16 alarmed on the simulator's steady traffic (docs/drift.md)
    n_frequencies: int = 4
    sample_size: int = 200  # bottom-k sample: the permutation fallback and the UI scatter
    min_f_events: int = 200  # from here on the F null; below, the permutation test
    n_permutations: int = 500
    max_permutations: int = 20_000
    seed: int = 0
    min_effect: float = 0.0  # on the Mahalanobis distance of the means, in reference SDs
    centroid_threshold: float | None = None  # cosine distance that warns; None: report only
    domain_classifier: str = "on_alarm"  # "on_alarm", "always" or "never"
    top_new: int = 10
    projection_points: int = 200
    # The basis and the reference sample's features, once per reference profile (not per
    # window and slice): see detectors._memo.
    _memo: PerProfile = field(default_factory=PerProfile, init=False, repr=False,
                              compare=False)

    def empty(self) -> EmbeddingDriftState:
        return EmbeddingDriftState()

    def loads(self, data: bytes) -> EmbeddingDriftState:
        raw = decode_value(data)
        if not isinstance(raw, Mapping) or raw.get("sketch") != SKETCH_VERSION:
            # A v1 state (raw sample, MMD): not comparable; its events count as unprojected.
            n = int(raw.get("n", 0)) if isinstance(raw, Mapping) else 0
            return EmbeddingDriftState(sketch=1, n_unprojected=n)
        return decode_value(data, EmbeddingDriftState)

    def basis(self, reference: Reference | None) -> sk.Basis | None:
        """The sketch basis of a reference (None when it has no embedding profile)."""
        e = None if reference is None else reference.profile.get("embedding")
        if not e or "pca_components" not in e:
            return None
        identity = f"{reference.model}|{reference.model_version}|{reference.reference_id}"
        return self._memo.get(reference.profile, ("basis", identity), lambda: sk.make_basis(
            np.asarray(e["pca_mean"]), np.asarray(e["pca_components"]),
            np.asarray(e["pca_explained_variance"]), self.n_components, self.n_frequencies,
            self.seed, identity))

    def observe(self, state: EmbeddingDriftState, batch: Batch) -> EmbeddingDriftState:
        """Without a reference the events can only be counted (see the class docstring)."""
        return self.observe_with_reference(state, batch, None)

    def observe_with_reference(self, state: EmbeddingDriftState, batch: Batch,
                               reference: Reference | None) -> EmbeddingDriftState:
        rows = np.flatnonzero(batch.has_embedding) if batch.embedding.shape[1] else []
        if len(rows) == 0:
            return state
        basis = self.basis(reference)
        if basis is None or basis.mean.size != batch.embedding.shape[1]:
            return replace(state, n_unprojected=state.n_unprojected + len(rows))
        fq = sk.quantise(sk.features(batch.embedding[rows], basis))
        total, outer = sk.sums(fq)
        ids = np.asarray(batch.event_id[rows], dtype=object)
        hashes = emb.event_hashes(ids)
        keep = emb.bottom_k(hashes, ids, self.sample_size)
        sample = (fq[keep] / sk.SCALE).astype(np.float16)
        part = EmbeddingDriftState(SKETCH_VERSION, basis.fingerprint, len(rows), 0, total, outer,
                                   hashes[keep], tuple(ids[keep].tolist()), sample)
        return self.merge(state, part)

    def merge(self, a: EmbeddingDriftState, b: EmbeddingDriftState) -> EmbeddingDriftState:
        if a.basis != b.basis:
            # Sums on different bases never add: the larger fingerprint's are kept and the
            # others' events counted (a function of the set of parts, so still associative).
            hi, lo = (a, b) if a.basis > b.basis else (b, a)
            return replace(hi, sketch=max(a.sketch, b.sketch),
                           n_unprojected=hi.n_unprojected + lo.n_unprojected + lo.n)
        hashes, ids, sample = a.hashes, a.ids, a.sample
        if b.hashes.size and a.hashes.size:
            all_ids = np.asarray(a.ids + b.ids, dtype=object)
            all_hashes = np.concatenate([a.hashes, b.hashes])
            keep = emb.bottom_k(all_hashes, all_ids, self.sample_size)
            hashes, ids = all_hashes[keep], tuple(all_ids[keep].tolist())
            sample = np.concatenate([a.sample, b.sample])[keep]
        elif b.hashes.size:
            hashes, ids, sample = b.hashes, b.ids, b.sample
        return EmbeddingDriftState(max(a.sketch, b.sketch), a.basis, a.n + b.n,
                                   a.n_unprojected + b.n_unprojected, _add(a.total, b.total),
                                   _add(a.outer, b.outer), hashes, ids, sample)

    def evaluate(self, state: EmbeddingDriftState, context: EvalContext) -> tuple[Finding, ...]:
        seen = state.n + state.n_unprojected
        if context.reference is None:
            return (Finding.no_reference(self, seen),)
        own = verdict.slice_profile(context)  # {} for a slice without its own reference
        if not own:
            return (verdict.no_reference(self, seen, verdict.NO_SLICE_REFERENCE),)
        ref = own.get("embedding")
        basis = self.basis(context.reference)
        if not ref or basis is None:
            return (verdict.no_reference(self, seen, "reference profile has no embeddings"),)
        if state.n < context.min_samples or state.basis != basis.fingerprint:
            return (self._insufficient(state, basis, context.min_samples),)
        if np.asarray(ref["sample"]).shape[1] != basis.mean.size:
            return (verdict.no_reference(self, seen, "slice reference embedding dimension "
                                         "differs from the version's"),)
        side = self._memo.get(context.reference.profile,
                              ("side", context.key.slice, basis.fingerprint),
                              lambda: _ReferenceSide.of(np.asarray(ref["sample"]), basis))
        if side.x.shape[0] < side.x.shape[1] + 2:
            return (verdict.no_reference(self, seen, f"slice reference has {side.x.shape[0]} "
                                         f"embeddings, too few for {side.x.shape[1]} features"),)
        return self._test(state, side, basis, context)

    def _insufficient(self, s: EmbeddingDriftState, basis: sk.Basis, need: int) -> Finding:
        f = Finding.insufficient(self, s.n, need)
        if s.n_unprojected and (s.n == 0 or s.basis != basis.fingerprint):
            why = (f"{s.n + s.n_unprojected} events were observed without the active "
                   f"reference's basis (no reference active then, another reference, an "
                   f"embedding dimension other than the reference's {basis.mean.size}, or a "
                   f"sketch v{s.sketch} state)")
            f = replace(f, details={**f.details, "reason": why})
        return f

    def _test(self, s: EmbeddingDriftState, side: _ReferenceSide, basis: sk.Basis,
              ctx: EvalContext) -> tuple[Finding, ...]:
        x_ref, m1, c1 = side.x, side.mean, side.cov
        n1, p = x_ref.shape
        m2, c2 = sk.moments(s.n, s.total, s.outer)
        a_key = verdict.alpha_per_key(ctx)
        seed = verdict.key_seed(self.seed, ctx.key)
        x_win = s.sample.astype(np.float64)
        if s.n >= min(self.min_f_events, self.sample_size):
            res = hotelling.hotelling_two_sample(m1, c1, n1, m2, c2, s.n)
            t2, p_raw, test = res.t2, res.p_value, "hotelling-t2-f"
            threshold = hotelling.critical_t2(a_key, n1, s.n, res.df1)
            extra: dict[str, Any] = {"f": res.f, "df": [res.df1, res.df2]}
        else:
            b = min(self.max_permutations,
                    max(self.n_permutations, math.ceil(1 / a_key - 1e-9) - 1))
            # The reference rows rounded as the window's sample was, so both are exchangeable.
            t2, p_raw = hotelling.permutation_test(side.x16, x_win, b, seed % 2**32)
            test, threshold, extra = "hotelling-t2-permutation", None, {"n_permutations": b}
        p_adj, rejected, _ = verdict.family(np.array([p_raw]), ctx, "bonferroni")
        w = hotelling.inverse_sqrt(((n1 - 1) * c1 + (s.n - 1) * c2) / max(n1 + s.n - 2, 1))
        distance = float(np.linalg.norm((m2 - m1) @ w))
        centroid = emb.cosine_distance(side.centroid,
                                       basis.mean + side.back @ m2[:basis.axes.shape[1]])
        q = basis.axes.shape[1]
        details: dict[str, Any] = {
            "test": test, "t2": t2, "t2_threshold": threshold, "p_value_raw": p_raw,
            "mahalanobis": distance, "n_features": p, "n_components": q,
            "n_frequencies": basis.freqs.shape[1], "n_ref": n1, "n_window": s.n,
            "n_unprojected": s.n_unprojected, "sketch": s.sketch,
            "centroid_cosine_distance": centroid,
            "component_shift": (m2[:5] - m1[:5]).tolist(), **extra,
            "projection": {"axes": ["pc1 (ref SD)", "pc2 (ref SD)"],
                           "reference": x_ref[:self.projection_points, :2].round(4),
                           "window": x_win[:self.projection_points, :2].round(4),
                           "window_ids": list(s.ids[:self.projection_points])}}
        if self.domain_classifier == "always" or (
                self.domain_classifier == "on_alarm" and bool(rejected[0])):
            details["domain_classifier"] = self._explain(x_ref, x_win, s.ids, seed)
        main = verdict.main_finding(self, ctx, p_adj=p_adj, rejected=rejected,
                                    effect_ok=np.array([distance >= self.min_effect]), n=s.n,
                                    test=test, details=details)
        t2_sub = Finding(self.name, self.version, main.status, score=t2, threshold=threshold,
                         p_value=p_raw, n=s.n, subject="t2", test=test)
        over = self.centroid_threshold is not None and centroid > self.centroid_threshold
        cos = Finding(self.name, self.version, Status.WARN if over else Status.OK,
                      score=centroid, threshold=self.centroid_threshold, n=s.n,
                      subject="centroid", test="cosine-distance")
        return (main, t2_sub, cos)

    def _explain(self, x_ref: np.ndarray, x_win: np.ndarray, ids: tuple[str, ...],
                 seed: int) -> dict[str, Any]:
        dc = domain_classifier_test(x_ref, x_win, seed=seed % (2**32))
        top = np.argsort(-dc.window_scores, kind="stable")[:self.top_new]
        return {"auc": dc.auc, "p_value": dc.p_value,
                "most_new": [{"event_id": ids[i], "score": float(dc.window_scores[i])}
                             for i in top]}


@dataclass(frozen=True, slots=True, eq=False)
class _ReferenceSide:
    """What a window is tested against, from one slice's reference sample on one basis:
    computed once per (reference profile, slice), not per window."""

    x: np.ndarray  # [n1, p] sketch features of the reference sample
    x16: np.ndarray  # the same rounded to float16 as a window's sample is (permutation test)
    mean: np.ndarray  # [p]
    cov: np.ndarray  # [p, p]
    back: np.ndarray  # [d, q] V diag(sd): principal coordinates back to embedding space
    centroid: np.ndarray  # [d] the reference mean rebuilt from its principal coordinates

    @classmethod
    def of(cls, sample: np.ndarray, basis: sk.Basis) -> _ReferenceSide:
        x = sk.features(sample, basis)
        q = basis.axes.shape[1]
        axes = basis.axes.astype(np.float64)
        back = axes / np.square(axes).sum(0)  # the axes are V / sd
        mean = x.mean(0)
        # Cosine distance of the two means rebuilt in embedding space from their principal
        # coordinates (``mean + V diag(sd) z``; the residual off the axes is not kept).
        return cls(x, x.astype(np.float16).astype(np.float64), mean, np.cov(x.T), back,
                   basis.mean.astype(np.float64) + back @ mean[:q])
