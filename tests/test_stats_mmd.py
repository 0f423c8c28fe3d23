"""Batched MMD permutation test against a naive O(n^2) MMD and a brute-force permutation loop."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist

from detectors.stats.mmd import (
    median_heuristic,
    median_heuristic_by_prefix,
    mmd2_of_splits,
    mmd2_unbiased,
    mmd_permutation_test,
    permutation_masks,
    permutation_threshold,
    rbf_kernel,
)


def naive_mmd2(x, y, sigma2):
    """Unbiased MMD^2 by explicit double loops (Gretton et al. 2012, eq. 3)."""
    k = lambda a, b: math.exp(-float(np.sum((a - b) ** 2)) / (2 * sigma2))
    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    return rng.normal(0, 1, (25, 4)), rng.normal(0.4, 1, (18, 4))


def test_median_heuristic_matches_scipy_pdist(data):
    x, _ = data
    assert median_heuristic(x) == pytest.approx(float(np.median(pdist(x, "sqeuclidean"))))


def test_unbiased_mmd_matches_naive(data):
    x, y = data
    s2 = median_heuristic(x)
    assert mmd2_unbiased(x, y, s2) == pytest.approx(naive_mmd2(x, y, s2), rel=1e-10)


def test_batched_splits_match_naive_on_every_permutation(data):
    x, y = data
    s2 = median_heuristic(x)
    z = np.concatenate([x, y])
    masks = permutation_masks(len(x), len(z), 30, seed=1)
    k = rbf_kernel(torch.as_tensor(z), torch.as_tensor(z), s2)
    batched = mmd2_of_splits(k, masks)
    for col in range(masks.shape[1]):
        pick = masks[:, col].numpy().astype(bool)
        assert pick.sum() == len(x)
        assert batched[col] == pytest.approx(naive_mmd2(z[pick], z[~pick], s2), rel=1e-9, abs=1e-12)


def test_permutation_pvalue_matches_brute_force_loop(data):
    x, y = data
    s2 = median_heuristic(x)
    z = np.concatenate([x, y])
    b, seed = 200, 17
    res = mmd_permutation_test(x, y, n_permutations=b, seed=seed, sigma2=s2, dtype=torch.float64)
    masks = permutation_masks(len(x), len(z), b, seed).numpy().astype(bool)
    observed = naive_mmd2(x, y, s2)
    null = [mmd2_unbiased(z[masks[:, c]], z[~masks[:, c]], s2) for c in range(1, b + 1)]
    expected_p = (1 + sum(v >= observed - 1e-12 for v in null)) / (b + 1)
    assert res.mmd2 == pytest.approx(observed, rel=1e-10)
    assert np.allclose(res.null, null, rtol=1e-9, atol=1e-12)
    assert res.p_value == pytest.approx(expected_p)


def test_float32_kernel_gives_the_same_decision():
    rng = np.random.default_rng(5)
    x, y = rng.normal(0, 1, (600, 16)), rng.normal(0.1, 1, (400, 16))
    r64 = mmd_permutation_test(x, y, 100, seed=2, dtype=torch.float64)
    r32 = mmd_permutation_test(x, y, 100, seed=2, dtype=torch.float32)
    assert r32.mmd2 == pytest.approx(r64.mmd2, abs=2e-6)
    assert abs(r32.p_value - r64.p_value) <= 2 / 101


def test_chunking_does_not_change_results(data):
    x, y = data
    a = mmd_permutation_test(x, y, 50, seed=4, chunk=7, dtype=torch.float64)
    b = mmd_permutation_test(x, y, 50, seed=4, chunk=256, dtype=torch.float64)
    assert a.p_value == b.p_value and np.allclose(a.null, b.null, rtol=1e-12, atol=1e-15)


def test_deterministic_under_seed(data):
    x, y = data
    a, b = mmd_permutation_test(x, y, 100, seed=9), mmd_permutation_test(x, y, 100, seed=9)
    assert a.p_value == b.p_value and np.array_equal(a.null, b.null)


def test_detects_a_shift_and_pvalue_floor():
    rng = np.random.default_rng(0)
    res = mmd_permutation_test(rng.normal(0, 1, (200, 8)), rng.normal(0.5, 1, (200, 8)), 100, 1)
    assert res.p_value == pytest.approx(1 / 101)


def test_null_pvalues_are_uniform():
    rng = np.random.default_rng(12)
    p = np.array([mmd_permutation_test(rng.normal(0, 1, (40, 3)), rng.normal(0, 1, (30, 3)),
                                       99, seed=i).p_value for i in range(300)])
    assert 0.02 <= np.mean(p <= 0.1) <= 0.18
    assert 0.40 <= np.mean(p <= 0.5) <= 0.60


def test_permutation_threshold_is_the_rejection_boundary():
    null = np.arange(1.0, 100.0)  # 99 permutations
    t = permutation_threshold(null, 0.05)  # reject when #{null >= obs} <= 4
    assert t == 95.0
    for obs in (94.5, 95.0, 95.5, 99.5):
        p = (1 + np.sum(null >= obs)) / 100
        assert (p <= 0.05) == (obs > t)
    assert permutation_threshold(null, 0.001) == math.inf


def test_median_heuristic_by_prefix_matches_direct(data):
    x, _ = data
    by_prefix = median_heuristic_by_prefix(x)
    assert by_prefix.shape == (4,)
    for j in range(1, 5):
        assert by_prefix[j - 1] == pytest.approx(median_heuristic(x[:, :j]))
