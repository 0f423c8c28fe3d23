"""Two-sample Hotelling T^2 of a window's mean feature vector against the reference's.

With reference and window samples of sizes ``n1``, ``n2`` in ``p`` dimensions, means ``m1``,
``m2`` and the pooled covariance ``S``::

    T^2 = n1 n2 / (n1 + n2) (m2 - m1)' S^-1 (m2 - m1)
    F   = (n1 + n2 - p - 1) / (p (n1 + n2 - 2)) T^2  ~  F(p, n1 + n2 - p - 1)  under H0

(Hotelling 1931; Anderson, *An Introduction to Multivariate Statistical Analysis*, 5.3). The F
null is exact for Gaussian features and accurate for window means by the central limit theorem
once ``n2`` is a few hundred; its p-value is continuous, so any level ``alpha / n_tests`` is
reachable (a permutation test with ``B`` permutations cannot go below ``1 / (B + 1)``).
Directions in which the pooled covariance is (numerically) singular are dropped and ``p`` is
their rank.

For small windows, :func:`permutation_test` gives an exact-level p-value from random splits of
the pooled rows, with the statistic computed under the pooled *total* covariance (invariant to
the split, so one whitening serves every permutation; T^2 with the within-group covariance is a
monotone function of it, so the test is the same).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

_RANK_TOL = 1e-9


@dataclass(frozen=True, slots=True)
class HotellingResult:
    t2: float
    f: float
    df1: int
    df2: int
    p_value: float


def inverse_sqrt(cov: np.ndarray) -> np.ndarray:
    """``W`` [p, rank] with ``W'covW = I`` on the non-singular directions of ``cov``."""
    w, v = np.linalg.eigh((cov + cov.T) / 2)
    keep = w > _RANK_TOL * max(float(w.max(initial=0.0)), 1e-300)
    return v[:, keep] / np.sqrt(w[keep])


def hotelling_two_sample(m1: np.ndarray, c1: np.ndarray, n1: int, m2: np.ndarray,
                         c2: np.ndarray, n2: int) -> HotellingResult:
    """Two-sample T^2 from means and unbiased covariances (see module docstring).

    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.normal(0, 1, (500, 3)), rng.normal(0, 1, (400, 3))
    >>> r = hotelling_two_sample(a.mean(0), np.cov(a.T), 500, b.mean(0), np.cov(b.T), 400)
    >>> r.df1, r.df2, r.p_value > 0.01
    (3, 896, True)
    """
    pooled = ((n1 - 1) * c1 + (n2 - 1) * c2) / max(n1 + n2 - 2, 1)
    w = inverse_sqrt(pooled)
    p = w.shape[1]
    df2 = n1 + n2 - p - 1
    if p == 0 or df2 < 1:
        return HotellingResult(0.0, 0.0, p, max(df2, 0), 1.0)
    d = (np.asarray(m2) - np.asarray(m1)) @ w
    t2 = float(n1 * n2 / (n1 + n2) * (d @ d))
    f = t2 * df2 / (p * (n1 + n2 - 2))
    # special.fdtrc: stats.f.sf's own computation, without its argument handling (same bits)
    return HotellingResult(t2, f, p, df2, float(special.fdtrc(p, df2, f)))


def critical_t2(alpha: float, n1: int, n2: int, p: int) -> float:
    """The T^2 at which the F p-value equals ``alpha`` (``inf`` when the test is undefined)."""
    df2 = n1 + n2 - p - 1
    if p < 1 or df2 < 1:
        return math.inf
    return float(special.fdtri(p, df2, 1.0 - alpha)) * p * (n1 + n2 - 2) / df2  # = f.isf


def permutation_test(x_ref: np.ndarray, x_win: np.ndarray, n_permutations: int,
                     seed: int, chunk: int = 512) -> tuple[float, float]:
    """``(T^2 under the total covariance, p-value)`` of ``x_win`` vs ``x_ref`` by
    ``n_permutations`` random splits; ``p = (1 + #{null >= observed}) / (1 + B)``.

    >>> rng = np.random.default_rng(1)
    >>> ref = rng.normal(0, 1, (300, 4))
    >>> permutation_test(ref, rng.normal(0, 1, (40, 4)), 199, 0)[1] > 0.01
    True
    >>> permutation_test(ref, rng.normal(1, 1, (40, 4)), 199, 0)[1]
    0.005
    """
    pooled = np.concatenate([x_ref, x_win]).astype(np.float64)
    n, m = pooled.shape[0], x_win.shape[0]
    w = inverse_sqrt(np.cov(pooled.T).reshape(pooled.shape[1], pooled.shape[1]))
    z = (pooled - pooled.mean(0)) @ w  # centred: a split's statistic is |sum over it|^2 scaled
    scale = n / (m * (n - m))

    def stat(sum_rows: np.ndarray) -> np.ndarray:
        return scale * (sum_rows * sum_rows).sum(-1)

    observed = float(stat(z[n - m:].sum(0)))
    rng = np.random.default_rng(seed)
    exceed, done = 0, 0
    while done < n_permutations:
        b = min(chunk, n_permutations - done)
        idx = np.argpartition(rng.random((b, n)), m - 1, axis=1)[:, :m]
        exceed += int(np.sum(stat(z[idx].sum(1)) >= observed * (1 - 1e-12)))
        done += b
    return observed, (1.0 + exceed) / (1.0 + n_permutations)
