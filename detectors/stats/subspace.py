"""Two-sample test of embedding sketches: a variance-weighted mean test on the reference's
principal axes plus a test of the residual energy off them, Bonferroni-combined.

The sketch features (:mod:`detectors.stats.sketch`) of a row are its whitened coordinates
``z_1..z_q`` on the reference's first ``q`` principal axes and its log RMS residual ``r`` off
them. With reference and window sizes ``n1``, ``n2``, means ``m1``, ``m2``, pooled covariance
``S`` and ``d = m2 - m1``:

* **Mean** (on the principal subspace): ``U = n1 n2 / (n1 + n2) * sum_j w_j d_j^2`` with
  ``w_j`` the reference's variance along axis ``j`` over their total. Weighting by variance
  (an unwhitened distance, as the kernel MMD with a median-heuristic bandwidth effectively is)
  keeps a small, noisy axis from dominating: on the simulator's steady ViT traffic the
  whitened T^2 on 16 axes alarmed in 6 of 205 windows, ``U`` in none (docs/drift.md). Under H0
  ``d`` is ``N(0, S (1/n1 + 1/n2))`` by the central limit theorem, so ``U`` is a weighted sum
  of chi-square(1) variables whose weights are the eigenvalues of ``W^1/2 S W^1/2``; its
  survival function is the saddlepoint approximation of :func:`wchisq_sf` (continuous: no
  permutation floor at any level).
* **Residual**: two-sample t of the mean of ``r`` (pooled variance, ``n1 + n2 - 2``
  degrees of freedom), two-sided: a change orthogonal to the principal subspace — added noise,
  a new direction — moves it and nothing else.

The window's p-value is ``min(1, 2 min(p_U, p_R))`` (Bonferroni over the two). Small windows
use :func:`permutation_test`: both statistics on random splits of the pooled rows, each with its
permutation p-value, the same combination.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from detectors.stats.floatsum import numpy_sum

_SQRT_2PI = float(np.sqrt(2 * np.pi))  # scipy.stats.norm's pdf constant


@dataclass(frozen=True, slots=True)
class SubspaceResult:
    u: float  # variance-weighted mean statistic
    p_mean: float
    t_resid: float  # residual t statistic (signed: > 0 means more energy off the axes)
    p_resid: float
    p_value: float  # Bonferroni of the two
    weights: np.ndarray  # eigenvalues of U's null (weighted chi-square(1) terms)


def _scaled(lam: np.ndarray) -> tuple[np.ndarray, float]:
    """The weights that matter (``> 1e-12`` of the largest), divided by the largest."""
    lam = np.asarray(lam, np.float64)
    lam = lam[lam > 1e-12 * max(float(lam.max(initial=0.0)), 1e-300)]
    scale = float(lam.max()) if lam.size else 1.0
    return lam / scale, scale


# _tail and _k1 run ~20 times per root search on ~17 weights: on Python floats, summed in
# numpy's order (floatsum), they give the array code's values bit for bit at a fraction of its
# per-call cost (embedding_drift's evaluation 1.46 -> 1.29 ms a key in bench/evaluate.py).
# _cumulants computes the three series of one saddlepoint in one pass over the weights
# (``2 v s`` once: ``-2 * v * s`` is its exact negation, so ``log1p`` sees the same value).
def _cumulants(s: float, lam: list[float]) -> tuple[float, float, float]:
    """``(K'(s), K(s), K''(s))`` of the scaled weights: :func:`_k1` and :func:`_tail`'s two
    sums, the same terms added in the same order."""
    t1, t0, t2 = [], [], []
    for v in lam:
        vs2 = 2 * v * s
        a = 1 - vs2
        t1.append(v / a)
        t0.append(math.log1p(-vs2))
        t2.append(2 * (v * v) / (a * a))
    return numpy_sum(t1), -0.5 * numpy_sum(t0), numpy_sum(t2)


def _tail(s: float, x: float, lam: list[float], mean: float, var: float) -> float:
    """Lugannani-Rice at the saddlepoint ``s`` of ``x = K'(s)`` (scaled weights)."""
    _, kk, k2 = _cumulants(s, lam)
    return _lugannani_rice(s, x, kk, k2, mean, var)


def _lugannani_rice(s: float, x: float, kk: float, k2: float, mean: float,
                    var: float) -> float:
    w = math.copysign(math.sqrt(max(2 * (s * x - kk), 0.0)), s)
    v = s * math.sqrt(k2)
    if abs(w) < 1e-6 or abs(v) < 1e-6:
        return float(special.ndtr(-(x - mean) / math.sqrt(var)))
    # the normal sf and pdf as scipy.stats.norm computes them, without its distribution wrapper
    p = float(special.ndtr(-w)) + math.exp(-w ** 2 / 2.0) / _SQRT_2PI * (1 / v - 1 / w)
    return min(max(p, 0.0), 1.0)


def _k1(s: float, lam: list[float]) -> float:
    """``K'(s)``: the cumulant generating function's slope (the ``x`` whose saddlepoint is s)."""
    return numpy_sum([v / (1 - 2 * v * s) for v in lam])


def wchisq_sf(x: float, lam: np.ndarray) -> float:
    """``P(sum_k lam_k chi2_1 > x)`` for weights ``lam >= 0``: the Lugannani-Rice saddlepoint
    approximation (Kuonen 1999, *Biometrika* 86: relative error of a few percent or less far
    into the tail, where a moment-matched chi-square is off by orders of magnitude).

    >>> abs(wchisq_sf(9.21, np.ones(2)) / 0.01 - 1) < 0.05  # chi-square(2): exp(-x/2)
    True
    >>> from scipy import stats
    >>> bool(abs(wchisq_sf(40.0, np.ones(16)) / stats.chi2.sf(40.0, 16) - 1) < 0.02)
    True
    """
    lam, scale = _scaled(lam)
    if lam.size == 0:
        return 0.0 if x > 0 else 1.0
    if x <= 0:
        return 1.0
    x = x / scale
    mean, var = float(lam.sum()), float(2 * (lam ** 2).sum())
    if abs(x - mean) < 1e-3 * math.sqrt(var):  # at the mean the saddlepoint is 0: no tail
        return float(special.ndtr(-(x - mean) / math.sqrt(var)))
    lo, hi = -lam.size / x, (1 - 1e-12) / 2
    terms = lam.tolist()
    s = float(optimize.brentq(lambda v: _k1(v, terms) - x, lo, hi, xtol=1e-14, rtol=1e-12))
    return _tail(s, x, terms, mean, var)


def wchisq_isf(alpha: float, lam: np.ndarray) -> float:
    """The ``x`` at which :func:`wchisq_sf` equals ``alpha`` (``inf`` without weights).

    One root search in saddlepoint space: ``x = K'(s)`` increases with ``s`` and the
    Lugannani-Rice tail at ``K'(s)`` decreases, so ``alpha`` is solved for over ``s`` (below
    ``1/2``) and ``K'(s)`` returned -- not a search over ``x`` that solves for the saddlepoint
    of every trial ``x`` (the same value within that search's tolerance, ``rtol`` 1e-7; a
    test compares the two on random weights).

    >>> x = wchisq_isf(0.001, np.array([1.0, 0.5, 0.25]))
    >>> bool(abs(wchisq_sf(x, np.array([1.0, 0.5, 0.25])) / 0.001 - 1) < 1e-9)
    True
    """
    lam0 = np.asarray(lam, np.float64)
    if lam0.size == 0 or float(lam0.max(initial=0.0)) <= 0 or not 0 < alpha < 1:
        return math.inf
    lam, scale = _scaled(lam0)
    mean, var = float(lam.sum()), float(2 * (lam ** 2).sum())
    terms = lam.tolist()

    def excess(s: float) -> float:  # wchisq_sf(K'(s)) - alpha, as wchisq_sf computes it
        x, kk, k2 = _cumulants(s, terms)
        if s == 0 or abs(x - mean) < 1e-3 * math.sqrt(var):
            return float(special.ndtr(-(x - mean) / math.sqrt(var))) - alpha
        return _lugannani_rice(s, x, kk, k2, mean, var) - alpha

    # Just outside the normal band at the mean (sf's jump there: the skewed tail at s -> 0
    # need not be 1/2): which side of it alpha lies on, as wchisq_sf's values decide.
    edge = 3e-3 / math.sqrt(var)
    if excess(edge) > 0:  # the upper tail: edge < s < 1/2 (K' -> inf at 1/2)
        lo, hi = edge, (1 - 1e-12) / 2
    elif excess(-edge) < 0:  # alpha above the tail at the mean: s < 0 (K' -> 0 at -inf)
        lo, hi = -1.0, -edge
        while excess(lo) < 0 and lo > -1e12:  # sf -> 1 as x -> 0
            lo *= 2
    else:  # alpha inside the jump at the mean: its edge
        lo, hi = -edge, edge
    s = float(optimize.brentq(excess, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps))
    return _k1(s, terms) * scale


def null_weights(pooled: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Eigenvalues of ``diag(sqrt w) S diag(sqrt w)``: the chi-square(1) weights of ``U``."""
    sw = np.sqrt(w)
    m = sw[:, None] * pooled * sw[None, :]
    return np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0.0, None)


def two_sample(m1: np.ndarray, c1: np.ndarray, n1: int, m2: np.ndarray, c2: np.ndarray,
               n2: int, w: np.ndarray) -> SubspaceResult:
    """The test from moments: features ``[z_1..z_q, r]`` (``q = len(w)``), unbiased
    covariances ``c1``, ``c2``; ``w`` the axis weights (summing to 1).

    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.normal(0, 1, (800, 4)), rng.normal(0, 1, (400, 4))
    >>> w = np.array([0.5, 0.3, 0.2])
    >>> r = two_sample(a.mean(0), np.cov(a.T), 800, b.mean(0), np.cov(b.T), 400, w)
    >>> r.p_value > 0.01
    True
    >>> b[:, 0] += 0.3
    >>> two_sample(a.mean(0), np.cov(a.T), 800, b.mean(0), np.cov(b.T), 400, w).p_mean < 1e-4
    True
    """
    q = len(w)
    pooled = ((n1 - 1) * c1 + (n2 - 1) * c2) / max(n1 + n2 - 2, 1)
    d = np.asarray(m2, np.float64) - np.asarray(m1, np.float64)
    h = n1 * n2 / (n1 + n2)
    u = float(h * (w * d[:q] ** 2).sum())
    lam = null_weights(pooled[:q, :q], w)
    p_mean = wchisq_sf(u, lam)
    var_r = float(pooled[q, q]) * (1 / n1 + 1 / n2)
    t = float(d[q] / math.sqrt(var_r)) if var_r > 0 else 0.0
    # Student's t sf as scipy.stats.t computes it (stdtr), without the distribution wrapper
    p_resid = float(2 * special.stdtr(max(n1 + n2 - 2, 1), -abs(t))) if var_r > 0 else 1.0
    return SubspaceResult(u, p_mean, t, p_resid, min(1.0, 2 * min(p_mean, p_resid)), lam)


def random_subsets(rng: np.random.Generator, n: int, k: int, b: int,
                   out: np.ndarray | None = None) -> np.ndarray:
    """``(b, n)`` float 0/1 rows, each the indicator of a uniform random ``k``-subset of
    ``range(n)``: Floyd's algorithm (each subset exactly ``1 / C(n, k)``), vectorised over the
    rows -- ``k`` steps of ``b`` random integers, not an argpartition of ``b x n`` floats.
    ``out`` (C-contiguous, at least ``b * n`` floats) is reused rather than fresh pages faulted.

    >>> rows = random_subsets(np.random.default_rng(0), 6, 2, 3000)
    >>> bool((rows.sum(1) == 2).all()), bool(abs(rows.mean(0) - 1 / 3).max() < 0.03)
    (True, True)
    """
    flat = np.zeros(b * n) if out is None else out.reshape(-1)[:b * n]
    flat[:] = 0.0
    base = np.arange(0, b * n, n)
    for j in range(n - k, n):
        pos = base + rng.integers(0, j + 1, b)
        pos = np.where(flat[pos] != 0, base + j, pos)  # drawn already in that row: take j
        flat[pos] = 1.0
    return flat.reshape(b, n)


def permutation_test(x_ref: np.ndarray, x_win: np.ndarray, w: np.ndarray, n_permutations: int,
                     seed: int, chunk: int = 1024) -> tuple[float, float, float, float, float]:
    """``(U, p_mean, t_resid, p_resid, p_value)`` of ``x_win`` vs ``x_ref`` by
    ``n_permutations`` random splits of the pooled rows; each p-value is
    ``(1 + #{null >= observed}) / (1 + B)``.

    Under a split the pooled total is fixed, so ``U`` is ``h sum_j w_j (split mean - pooled
    mean)_j^2`` up to a constant factor, and the residual t is a monotone function of
    ``|split mean of r - pooled mean|``: both statistics are computed from split sums.

    >>> rng = np.random.default_rng(1)
    >>> ref, w = rng.normal(0, 1, (300, 4)), np.array([0.6, 0.3, 0.1])
    >>> permutation_test(ref, rng.normal(0, 1, (40, 4)), w, 199, 0)[4] > 0.01
    True
    >>> permutation_test(ref, rng.normal(1, 1, (40, 4)), w, 199, 0)[1]
    0.005
    """
    q = len(w)
    pooled = np.concatenate([x_ref, x_win]).astype(np.float64)
    n, m = pooled.shape[0], x_win.shape[0]
    c = pooled - pooled.mean(0)
    zq = c[:, :q] * np.sqrt(w)
    r = c[:, q]
    su_obs = float((zq[n - m:].sum(0) ** 2).sum())
    u_obs = n / (m * (n - m)) * su_obs  # window mean - rest's mean = sum * n / (m (n - m))
    sr_obs = abs(float(r[n - m:].sum()))
    # A split is drawn as its smaller side (k rows): the pooled rows are centred, so the other
    # side's sums are the negation and both statistics (squares, absolute values) are equal.
    k = min(m, n - m)
    f = np.column_stack([zq, r])
    rng = np.random.default_rng(seed)
    buf = np.empty(min(chunk, n_permutations) * n)
    ex_u = ex_r = done = 0
    tol = 1 - 1e-12
    while done < n_permutations:
        b = min(chunk, n_permutations - done)
        s = random_subsets(rng, n, k, b, buf) @ f  # BLAS: (b, n) 0/1 by (n, q + 1)
        ex_u += int(np.sum((s[:, :q] ** 2).sum(1) >= su_obs * tol))
        ex_r += int(np.sum(np.abs(s[:, q]) >= sr_obs * tol))
        done += b
    p_u = (1.0 + ex_u) / (1.0 + n_permutations)
    p_r = (1.0 + ex_r) / (1.0 + n_permutations)
    ref_r, win_r = x_ref[:, q].astype(np.float64), x_win[:, q].astype(np.float64)
    sp = math.sqrt(((len(ref_r) - 1) * ref_r.var(ddof=1) + (m - 1) * win_r.var(ddof=1))
                   / max(n - 2, 1) * (1 / len(ref_r) + 1 / m)) if m > 1 else 0.0
    t = float((win_r.mean() - ref_r.mean()) / sp) if sp > 0 else 0.0
    return u_obs, p_u, t, p_r, min(1.0, 2 * min(p_u, p_r))
