"""Embedding drift: a variance-weighted mean test plus a residual-energy test on a kilobyte sketch
of the embeddings (see stats.sketch and stats.subspace)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
from scipy import special

from detectors import _verdict as verdict
from detectors._equality import ValueEquality
from detectors._memo import PerProfile
from detectors.stats import embeddings as emb
from detectors.stats import hotelling, subspace
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
    group_offsets,
    precomputed,
)

TEST = "weighted-mean+residual"
SKETCH_VERSION = 3  # 1: the raw 512-row sample of the MMD test; 2: 8 axes + RFF (both retired)


@dataclass(frozen=True, slots=True, eq=False)
class EmbeddingDriftState(ValueEquality):
    """Exact fixed-point sums of the sketch features plus a small bottom-k sample of them.

    Bytes do not grow with traffic: ``p`` sums, ``p(p+1)/2`` product sums and ``sample_size`` x
    ``p`` float16 features (p = 17 by default: ~15 KiB serialised at any embedding width).
    """

    sketch: int = SKETCH_VERSION  # state format; an older checkpoint keeps its (never compared)
    basis: int = 0  # fingerprint of the reference basis the sums are on (0: none)
    n: int = 0  # events in the sums
    n_unprojected: int = 0  # events seen without that basis (no reference, another one, v1 state)
    total: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # [p]
    outer: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # [p(p+1)/2]
    hashes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))  # ascending
    ids: tuple[str, ...] = ()  # event ids of the sample, same order
    sample: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float16))  # [k, p]


def _reference_features(sample: np.ndarray, basis: sk.Basis
                        ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """A reference sample's sketch features with their mean and covariance (None when there
    are too few rows for a covariance of the features): the same for every window of a
    slice, so memoised with the features instead of recomputed at each evaluation."""
    x = sk.features(sample, basis)
    if x.shape[0] < x.shape[1] + 2:
        return x, None, None
    return x, x.mean(0), np.cov(x.T)


def _add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return b.copy() if a.size == 0 else a if b.size == 0 else a + b


@dataclass(frozen=True)
class EmbeddingDrift(DataclassStateCodec):
    """Drift of the model's embeddings (e.g. the ViT's CLS vector).

    Test: every embedding is mapped to ``p = n_components + 1`` features on the reference's
    basis (:mod:`detectors.stats.sketch`: whitened coordinates on the reference's first
    ``n_components`` principal axes and the log RMS residual off them); a window keeps their
    count, sum and sum of outer products as exact integers, so merging windows or partitions is
    addition. At evaluation the window is compared with the reference (the features of the
    reference profile's embedding sample, the slice's own when it has one) by two tests,
    Bonferroni-combined (:mod:`detectors.stats.subspace`): the distance of the mean vectors on
    the principal axes weighted by the reference's variance along each (a weighted chi-square
    null from the pooled covariance), and a t test of the mean log residual (energy off the
    axes: added noise, a new direction). Windows of at least ``min_f_events`` events use those
    asymptotic nulls; below, a permutation test of the same two statistics on the window's
    events (all of them are in the bottom-k ``sample_size`` sample) with
    ``max(n_permutations, ceil(2 n_tests / alpha) - 1)`` permutations, so the level is reachable
    for any slice count up to ``max_permutations * alpha / 2``. The centroid cosine distance
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
    data in a window over all ``n_tests`` slices and all looks (Bonferroni: a slice alerts when
    its p-value is at most ``look_alpha / n_tests``, the share of ``alpha`` spent on this look,
    ``detectors._verdict.look_alpha``). Measured false-alarm rates and power are in
    docs/drift.md (``bench/drift.py``).

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
    0 ok weighted-mean+residual True
    1 ok weighted-mean+residual True
    2 ok weighted-mean+residual True
    3 alert weighted-mean+residual True
    4 alert weighted-mean+residual True
    5 alert weighted-mean+residual True
    """

    name: ClassVar[str] = "embedding_drift"
    version: ClassVar[int] = 3
    state_type: ClassVar[type] = EmbeddingDriftState
    wide_columns: ClassVar[frozenset[str]] = frozenset({"embedding"})

    n_components: int = 16  # principal axes of the mean test; the residual is off them
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
            # A v1 (raw sample, MMD) or v2 (other features) state: not comparable; its events
            # count as unprojected.
            n = int(raw.get("n", 0)) + int(raw.get("n_unprojected", 0)) if isinstance(
                raw, Mapping) else 0
            old = int(raw.get("sketch", 1)) if isinstance(raw, Mapping) else 1
            return EmbeddingDriftState(sketch=old, n_unprojected=n)
        return decode_value(data, EmbeddingDriftState)

    def basis(self, reference: Reference | None) -> sk.Basis | None:
        """The sketch basis of a reference (None when it has no embedding profile)."""
        e = None if reference is None else reference.profile.get("embedding")
        if not e or "pca_components" not in e:
            return None
        identity = f"{reference.model}|{reference.model_version}|{reference.reference_id}"
        return self._memo.get(reference.profile, ("basis", identity), lambda: sk.make_basis(
            np.asarray(e["pca_mean"]), np.asarray(e["pca_components"]),
            np.asarray(e["pca_explained_variance"]), self.n_components, identity))

    def precompute(self, reference: Reference) -> sk.Projection | None:
        basis = self.basis(reference)
        if basis is None:
            return None
        return self._memo.get(reference.profile, ("projection", basis.fingerprint),
                              lambda: sk.Projection.of(basis))

    def observe(self, state: EmbeddingDriftState, batch: Batch) -> EmbeddingDriftState:
        """Without a reference the events can only be counted (see the class docstring)."""
        return self.observe_with_reference(state, batch, None)

    def observe_with_reference(self, state: EmbeddingDriftState, batch: Batch,
                               reference: Reference | None) -> EmbeddingDriftState:
        return self.observe_groups([state], batch, [np.arange(len(batch))], reference)[0]

    def observe_groups(self, states: Sequence[EmbeddingDriftState], batch: Batch,
                       groups: Sequence[np.ndarray],
                       reference: Reference | None) -> list[EmbeddingDriftState]:
        """Every group at once: each embedding is projected and its id hashed once per batch
        (not once per slice it is in), and the groups' sums are one ``np.add.reduceat``."""
        has = batch.has_embedding if batch.embedding.shape[1] else np.zeros(len(batch), bool)
        rows = list(groups) if has.all() else [g[has[g]] for g in groups]
        basis = self.basis(reference)
        if basis is None or basis.mean.size != batch.embedding.shape[1]:
            return [replace(s, n_unprojected=s.n_unprojected + len(r)) if len(r) else s
                    for s, r in zip(states, rows, strict=True)]
        used = np.flatnonzero(np.bincount(np.concatenate([*rows, np.zeros(0, np.int64)]),
                                          minlength=len(batch)))
        if used.size == 0:
            return list(states)
        if used.size == len(batch):  # every row: a row's number is its place in fq
            local = [np.asarray(r, np.int64) for r in rows]
        else:
            at = np.zeros(len(batch), np.int64)
            at[used] = np.arange(used.size)
            local = [at[r] for r in rows]
        every = used.size == len(batch)
        ids = np.asarray(batch.event_id[used], dtype=object)
        ahead = precomputed(batch, self.name, self.precompute(reference).key)
        if ahead is not None:  # the same values (a row's features do not depend on its batch)
            ahead = ahead if every else ahead[used]
            fq, hashes = ahead[:, :-1], ahead[:, -1].view(np.uint64)
        else:
            fq = sk.quantise(sk.features(batch.embedding, basis, None if every else used))
            hashes = emb.event_hashes(ids)
        # The float16 sample features of every used row at once: a group's sample is a gather
        # (the same values; 200 rows x ~300 groups converted one by one cost more).
        sampled = (fq / sk.SCALE).astype(np.float16)
        full = [i for i, r in enumerate(rows) if len(r)]
        cat, starts = group_offsets([local[i] for i in full])
        totals, outers = sk.group_sums(fq, cat, starts)
        out = list(states)
        samples = emb.group_bottom_k(hashes, ids, cat, starts, self.sample_size)
        for j, (i, kept) in enumerate(zip(full, samples, strict=True)):
            r = local[i]
            part = EmbeddingDriftState(SKETCH_VERSION, basis.fingerprint, len(r), 0, totals[j],
                                       outers[j], hashes[kept], tuple(ids[kept].tolist()),
                                       sampled[kept])
            s = states[i]
            # merge(empty(), part) is part: skip it (a dataclasses.replace per group)
            fresh = (s.n == 0 and s.n_unprojected == 0 and s.basis == 0
                     and s.sketch == SKETCH_VERSION)
            out[i] = part if fresh else self.merge(s, part)
        return out

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
                              ("features", context.key.slice, basis.fingerprint),
                              lambda: self._reference_side(np.asarray(ref["sample"]), basis,
                                                           context.reference.profile))
        if side[1] is None:
            return (verdict.no_reference(self, seen, f"slice reference has {side[0].shape[0]} "
                                         f"embeddings, too few for {side[0].shape[1]} features"),)
        return self._test(state, side, basis, context)

    def _reference_side(self, sample: np.ndarray, basis: sk.Basis, profile: Mapping[str, Any]
                        ) -> tuple[np.ndarray, ...]:
        """Once per slice: its reference's features, mean, covariance, centroid in embedding
        space (:meth:`_centroid_cosine`) and rounded scatter points."""
        x, m1, c1 = _reference_features(sample, basis)
        if m1 is None:
            return x, None, None, None, None
        mean, back = self._centroid_map(basis, profile)
        return (x, m1, c1, mean + back @ m1[:basis.axes.shape[1]],
                x[:self.projection_points, :2].round(4))

    def _insufficient(self, s: EmbeddingDriftState, basis: sk.Basis, need: int) -> Finding:
        f = Finding.insufficient(self, s.n, need)
        if s.n_unprojected and (s.n == 0 or s.basis != basis.fingerprint):
            why = (f"{s.n + s.n_unprojected} events were observed without the active "
                   f"reference's basis (no reference active then, another reference, an "
                   f"embedding dimension other than the reference's {basis.mean.size}, or a "
                   f"sketch v{s.sketch} state)")
            f = replace(f, details={**f.details, "reason": why})
        return f

    def _test(self, s: EmbeddingDriftState, side: tuple[np.ndarray, ...], basis: sk.Basis,
              ctx: EvalContext) -> tuple[Finding, ...]:
        x_ref, m1, c1, ref_centroid, ref_points = side
        n1, p = x_ref.shape
        q = basis.axes.shape[1]
        m2, c2 = sk.moments(s.n, s.total, s.outer)
        w = basis.variance / basis.variance.sum()
        a_key = verdict.alpha_per_key(ctx)
        seed = verdict.key_seed(self.seed, ctx.key)
        x_win = s.sample.astype(np.float64)
        extra: dict[str, Any] = {}
        if s.n >= min(self.min_f_events, self.sample_size):
            res = subspace.two_sample(m1, c1, n1, m2, c2, s.n, w)
            u, p_mean, t_resid, p_resid, p_raw = (res.u, res.p_mean, res.t_resid, res.p_resid,
                                                  res.p_value)
            test = TEST
            # Each part is tested at half the slice's level (Bonferroni over the two).
            u_crit = subspace.wchisq_isf(a_key / 2, res.weights)
            # stats.t.isf without its distribution wrapper (~0.3 ms a call): the same function
            t_crit = float(-special.stdtrit(max(n1 + s.n - 2, 1), a_key / 4))
        else:
            b = min(self.max_permutations,
                    max(self.n_permutations, math.ceil(2 / a_key - 1e-9) - 1))
            # The reference rows rounded as the window's sample was, so both are exchangeable.
            ref16 = x_ref.astype(np.float16).astype(np.float64)
            u, p_mean, t_resid, p_resid, p_raw = subspace.permutation_test(
                ref16, x_win, w, b, seed % 2**32)
            test, u_crit, t_crit = TEST + "-permutation", None, None
            extra = {"n_permutations": b}
        p_adj, rejected, _ = verdict.family(np.array([p_raw]), ctx, "bonferroni")
        pooled = ((n1 - 1) * c1 + (s.n - 1) * c2) / max(n1 + s.n - 2, 1)
        distance = float(np.linalg.norm((m2 - m1) @ hotelling.inverse_sqrt(pooled)))
        centroid = self._centroid_cosine(ref_centroid, m2, basis, ctx)
        details: dict[str, Any] = {
            "test": test, "p_value_raw": p_raw,
            "mean_stat": u, "mean_threshold": u_crit, "p_mean": p_mean,
            "residual_t": t_resid, "residual_threshold": t_crit, "p_residual": p_resid,
            "mahalanobis": distance, "n_features": p, "n_components": q, "n_ref": n1,
            "n_window": s.n, "n_unprojected": s.n_unprojected, "sketch": s.sketch,
            "centroid_cosine_distance": centroid,
            "component_shift": (m2[:5] - m1[:5]).tolist(),
            "residual_shift": float(m2[q] - m1[q]), **extra,
            "projection": {"axes": ["pc1 (ref SD)", "pc2 (ref SD)"],
                           "reference": ref_points,
                           "window": x_win[:self.projection_points, :2].round(4),
                           "window_ids": list(s.ids[:self.projection_points])}}
        if self.domain_classifier == "always" or (
                self.domain_classifier == "on_alarm" and bool(rejected[0])):
            details["domain_classifier"] = self._explain(x_ref, x_win, s.ids, seed)
        main = verdict.main_finding(self, ctx, p_adj=p_adj, rejected=rejected,
                                    effect_ok=np.array([distance >= self.min_effect]), n=s.n,
                                    test=test, details=details)
        half = a_key / 2  # each part's share of the slice's level
        parts = []
        for subject, score, crit, p_part in (("mean", u, u_crit, p_mean),
                                             ("residual", abs(t_resid), t_crit, p_resid)):
            status = verdict.sub_status(p_part <= half, distance >= self.min_effect)
            parts.append(Finding(self.name, self.version, status, score=score, threshold=crit,
                                 p_value=p_part, n=s.n, subject=subject, test=test))
        over = self.centroid_threshold is not None and centroid > self.centroid_threshold
        cos = Finding(self.name, self.version, Status.WARN if over else Status.OK,
                      score=centroid, threshold=self.centroid_threshold, n=s.n,
                      subject="centroid", test="cosine-distance")
        return (main, *parts, cos)

    def _centroid_cosine(self, ref_centroid: np.ndarray, m2: np.ndarray, basis: sk.Basis,
                         ctx: EvalContext) -> float:
        """Cosine distance of the two means rebuilt in embedding space from their principal
        coordinates (``mean + V diag(sd) z``; the residual off the axes is not kept)."""
        mean, back = self._centroid_map(basis, ctx.reference.profile)
        return emb.cosine_distance(ref_centroid, mean + back @ m2[:basis.axes.shape[1]])

    def _centroid_map(self, basis: sk.Basis, profile: Mapping[str, Any]) -> tuple[Any, Any]:
        """``(mean, V diag(sd))`` of ``basis`` in float64, once per basis (axes are V / sd)."""
        def build() -> tuple[np.ndarray, np.ndarray]:
            axes = basis.axes.astype(np.float64)
            return basis.mean.astype(np.float64), axes / np.square(axes).sum(0)
        return self._memo.get(profile, ("centroid_map", basis.fingerprint), build)

    def _explain(self, x_ref: np.ndarray, x_win: np.ndarray, ids: tuple[str, ...],
                 seed: int) -> dict[str, Any]:
        dc = domain_classifier_test(x_ref, x_win, seed=seed % (2**32))
        top = np.argsort(-dc.window_scores, kind="stable")[:self.top_new]
        return {"auc": dc.auc, "p_value": dc.p_value,
                "most_new": [{"event_id": ids[i], "score": float(dc.window_scores[i])}
                             for i in top]}
