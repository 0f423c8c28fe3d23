"""Kernel maximum mean discrepancy (MMD^2) with a batched permutation test, in torch.

The joint kernel matrix ``K`` of the pooled sample is computed once. A permutation is a 0/1
column ``e`` marking which pooled points play "reference"; every term of the unbiased MMD^2 of
that split is a quadratic or linear form in ``e`` (``e'Ke``, ``e'K1``, ``e'diag K``), so all
permutations together cost one ``K @ E`` matrix product: 100 permutations of 4,000 points are a
4,000 x 4,000 x 101 matmul instead of 100 gathers of the kernel matrix.

Kernel: Gaussian RBF ``k(a, b) = exp(-|a - b|^2 / (2 sigma^2))`` with ``sigma`` the median
pairwise distance of the reference (the median heuristic, Gretton et al. 2012). Taking it from
the reference alone keeps the kernel independent of the window under test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

# numpy only, so it lives beside the bottom-k sample (a reference capture needs no torch);
# re-exported here beside median_heuristic, which it matches prefix by prefix
from detectors.stats.embeddings import median_heuristic_by_prefix  # noqa: F401


@dataclass(frozen=True, slots=True)
class MMDResult:
    mmd2: float  # unbiased MMD^2 of the observed split (can be slightly negative under the null)
    p_value: float  # (1 + #{null >= observed}) / (1 + n_permutations): never 0, exactly valid
    null: np.ndarray  # the permutation distribution, float64 [n_permutations]
    sigma2: float


def median_heuristic(x: np.ndarray, max_points: int = 1000) -> float:
    """Median squared pairwise distance among the first ``max_points`` rows (i < j)."""
    z = torch.as_tensor(np.asarray(x[:max_points]), dtype=torch.float64)
    iu = np.triu_indices(z.shape[0], k=1)
    med = float(np.median(_sqdist(z, z).numpy()[iu])) if iu[0].size else 0.0
    return med if med > 0 else 1.0  # all points identical: any bandwidth gives MMD = 0


def _sqdist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared distances as ONE matmul of augmented rows: ``[a, |a|^2, 1] . [-2b, 1, |b|^2]``.

    No n x m temporary besides the result (at n = 4,000 each one costs as much as the matmul);
    cdist is slower for wide inputs.
    """
    ones_a, ones_b = a.new_ones(a.shape[0], 1), b.new_ones(b.shape[0], 1)
    left = torch.cat([a, (a * a).sum(1, keepdim=True), ones_a], 1)
    right = torch.cat([-2.0 * b, ones_b, (b * b).sum(1, keepdim=True)], 1)
    return (left @ right.T).clamp_min_(0.0)


def rbf_kernel(a: torch.Tensor, b: torch.Tensor, sigma2: float) -> torch.Tensor:
    """``exp(-|a - b|^2 / (2 sigma2))`` as one matmul and one in-place exp.

    The scale and sign are folded into the augmented factors (``[a, -|a|^2, -1] . [2b, 1,
    |b|^2]`` of the scaled inputs) so no pass over the n x m result is spent on them. Rounding
    can leave an exponent of ~1e-7 above 0 on the diagonal: harmless, MMD^2 does not need
    k <= 1.
    """
    c = (0.5 / sigma2) ** 0.5
    a, b = a * c, b * c
    left = torch.cat([a, -(a * a).sum(1, keepdim=True), -a.new_ones(a.shape[0], 1)], 1)
    right = torch.cat([2.0 * b, b.new_ones(b.shape[0], 1), (b * b).sum(1, keepdim=True)], 1)
    return (left @ right.T).exp_()


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, sigma2: float) -> float:
    """Unbiased MMD^2 estimate between samples ``x`` [n, d] and ``y`` [m, d] (n, m >= 2)."""
    tx = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    ty = torch.as_tensor(np.asarray(y), dtype=torch.float64)
    n, m = tx.shape[0], ty.shape[0]
    kxx, kyy, kxy = rbf_kernel(tx, tx, sigma2), rbf_kernel(ty, ty, sigma2), rbf_kernel(tx, ty, sigma2)
    xx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    yy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(xx + yy - 2.0 * kxy.mean())


def permutation_masks(n_x: int, n: int, n_permutations: int, seed: int) -> torch.Tensor:
    """A float64 [n, 1 + n_permutations] 0/1 matrix. Column 0 is the observed split (the first
    ``n_x`` points); each other column marks ``n_x`` points drawn without replacement."""
    gen = torch.Generator().manual_seed(seed)
    # The n_x smallest of n uniform draws are a uniform random subset; kthvalue finds them in
    # O(n) per row where argsort needs O(n log n). float64 draws make ties (which would select
    # n_x + 1 points) practically impossible; column 0 is the observed split.
    draws = torch.rand(n_permutations, n, generator=gen, dtype=torch.float64)
    masks = torch.zeros(n_permutations + 1, n, dtype=torch.float64)
    masks[0, :n_x] = 1.0
    if n_permutations:
        kth = draws.kthvalue(n_x, dim=1, keepdim=True).values
        masks[1:] = (draws <= kth).to(torch.float64)
    return masks.T.contiguous()


def mmd2_of_splits(k: torch.Tensor, masks: torch.Tensor) -> np.ndarray:
    """Unbiased MMD^2 for every split column of ``masks`` from the joint kernel ``k``, batched.

    With ``e`` a column, ``r = K 1`` and ``t = 1'K1``:
    ``sum_xx = e'Ke - e'diag(K)``, ``sum_xy = e'r - e'Ke``,
    ``sum_yy = t - 2 e'r + e'Ke - (1 - e)'diag(K)``.
    """
    e = masks.to(k.dtype)
    n = k.shape[0]
    n_x = float(e[:, 0].sum())
    n_y = n - n_x
    ke = k @ e  # the only O(n^2 B) step
    # Sums in float64: the terms are O(n^2) and MMD^2 is a small difference of them.
    eke = (e.double() * ke.double()).sum(0)
    r = k.sum(1).double()
    diag = k.diagonal().double()
    e64 = e.double()
    er, ed = e64.T @ r, e64.T @ diag
    total, dsum = r.sum(), diag.sum()
    sxx = eke - ed
    sxy = er - eke
    syy = total - 2.0 * er + eke - (dsum - ed)
    mmd2 = sxx / (n_x * (n_x - 1)) + syy / (n_y * (n_y - 1)) - 2.0 * sxy / (n_x * n_y)
    return mmd2.numpy()


def mmd_permutation_test(x: np.ndarray, y: np.ndarray, n_permutations: int = 100, seed: int = 0,
                         sigma2: float | None = None, dtype: torch.dtype = torch.float32,
                         chunk: int = 256) -> MMDResult:
    """Permutation test of ``H0: x and y share a distribution`` with the unbiased MMD^2.

    Parameters
    ----------
    x, y
        Reference [n, d] and window [m, d] samples (n, m >= 2).
    n_permutations
        Random splits of the pooled sample. The smallest reachable p-value is
        ``1 / (n_permutations + 1)``; callers needing level ``a`` must use at least ``1/a - 1``.
    seed
        Seeds the permutations: the same inputs and seed give the same p-value.
    sigma2
        Squared bandwidth; default: :func:`median_heuristic` of ``x``.
    dtype
        Kernel precision. float32 halves the matmul time; its rounding (~1e-7 relative on the
        kernel sums) is far below the permutation spread of MMD^2.
    chunk
        Permutations per matmul, which bounds memory at ``n * chunk`` floats.
    """
    x, y = np.asarray(x), np.asarray(y)
    if sigma2 is None:
        sigma2 = median_heuristic(x)
    z = torch.as_tensor(np.concatenate([x, y]), dtype=dtype)
    k = rbf_kernel(z, z, sigma2)
    masks = permutation_masks(x.shape[0], z.shape[0], n_permutations, seed)
    stats = np.concatenate([mmd2_of_splits(k, masks[:, i:i + chunk])
                            for i in range(0, masks.shape[1], chunk)])
    observed, null = float(stats[0]), stats[1:]
    p = (1.0 + float(np.sum(null >= observed))) / (1.0 + n_permutations)
    return MMDResult(observed, p, null, float(sigma2))


def permutation_threshold(null: np.ndarray, alpha: float) -> float:
    """Smallest score that would be rejected at level ``alpha`` given this permutation null.

    Rejection needs ``#{null >= obs} <= alpha * (B + 1) - 1``; the score must exceed the
    ``r + 1``-th largest null value. ``inf`` when ``alpha * (B + 1) < 1`` (no split can reject).
    """
    r = math.floor(alpha * (null.size + 1) * (1 + 1e-9)) - 1
    if r < 0:
        return math.inf
    if r >= null.size:
        return -math.inf
    return float(np.sort(null)[::-1][r])
