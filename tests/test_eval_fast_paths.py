"""The evaluation's faster forms give what the plain forms gave: the saddlepoint-space inverse of
the weighted chi-square tail against the nested root search it replaced."""

import math

import numpy as np
import pytest
from scipy import optimize, stats

from detectors.stats import subspace


def nested_wchisq_isf(alpha: float, lam: np.ndarray) -> float:
    """The previous wchisq_isf: a root search over x, each trial solving its saddlepoint."""
    lam = np.asarray(lam, np.float64)
    if lam.size == 0 or float(lam.max(initial=0.0)) <= 0 or not 0 < alpha < 1:
        return math.inf
    hi = float(lam.sum()) + 1.0
    while subspace.wchisq_sf(hi, lam) > alpha:
        hi *= 2
    return float(optimize.brentq(lambda v: subspace.wchisq_sf(v, lam) - alpha, 0.0, hi,
                                 xtol=1e-9 * hi, rtol=1e-7))


def test_wchisq_isf_agrees_with_the_nested_search_on_random_weights():
    rng = np.random.default_rng(7)
    worst = 0.0
    for _ in range(400):
        q = int(rng.integers(1, 30))
        lam = rng.gamma(rng.uniform(0.2, 3), 1, q) * 10 ** rng.uniform(-3, 3)
        if rng.random() < 0.2:
            lam[rng.random(q) < 0.3] = 0.0
        alpha = 10 ** rng.uniform(-10, math.log10(0.99))
        old, new = nested_wchisq_isf(alpha, lam), subspace.wchisq_isf(alpha, lam)
        if old == math.inf:  # no positive weight
            assert new == math.inf
            continue
        worst = max(worst, abs(new / old - 1))
        # the new one is the sharper root: sf there is alpha to ~1e-9 (or at sf's jump)
        assert subspace.wchisq_sf(new, lam) == pytest.approx(alpha, rel=1e-6) or \
            abs(new - lam.sum()) < 1e-2 * math.sqrt(2 * (lam ** 2).sum())
    assert worst < 1e-6


def test_wchisq_isf_edge_cases():
    assert subspace.wchisq_isf(0.01, np.zeros(3)) == math.inf
    assert subspace.wchisq_isf(0.01, np.array([])) == math.inf
    assert subspace.wchisq_isf(0.0, np.ones(3)) == math.inf
    # one weight: chi-square(1), where the saddlepoint approximation is within a few percent
    assert subspace.wchisq_isf(1e-4, np.array([2.0])) == pytest.approx(
        2 * stats.chi2.isf(1e-4, 1), rel=0.03)
