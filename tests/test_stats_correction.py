"""Multiple-testing correction against scipy's Benjamini-Hochberg and a brute-force rule."""

import numpy as np
import pytest
from scipy import stats

from detectors.stats.correction import adjust, benjamini_hochberg, bonferroni, critical_p


@pytest.fixture
def pvalues():
    rng = np.random.default_rng(7)
    return np.concatenate([rng.uniform(0, 1, 40), rng.uniform(0, 0.002, 8), [0.0, 1.0, 0.5]])


def test_bh_matches_scipy(pvalues):
    assert np.allclose(benjamini_hochberg(pvalues), stats.false_discovery_control(pvalues))


def test_bh_rejections_match_the_step_up_rule(pvalues):
    alpha, m = 0.05, pvalues.size
    ranked = np.sort(pvalues)
    k = max([i + 1 for i in range(m) if ranked[i] <= (i + 1) * alpha / m], default=0)
    expected = pvalues <= (ranked[k - 1] if k else -1)
    assert np.array_equal(benjamini_hochberg(pvalues) <= alpha, expected)


def test_bonferroni():
    assert np.allclose(bonferroni(np.array([0.001, 0.3]), m=10), [0.01, 1.0])


def test_family_larger_than_given_pvalues():
    p = np.array([0.001, 0.02])
    assert np.allclose(bonferroni(p, m=4), [0.004, 0.08])
    assert np.allclose(benjamini_hochberg(p, m=4), [0.004, 0.04])


@pytest.mark.parametrize("method", ["bonferroni", "bh"])
def test_critical_p_agrees_with_adjusted_pvalues(pvalues, method):
    for alpha in (0.01, 0.05, 0.2):
        crit = critical_p(pvalues, alpha, method)
        assert np.array_equal(pvalues <= crit, adjust(pvalues, method) <= alpha * (1 + 1e-12))


def test_unknown_method():
    with pytest.raises(ValueError, match="unknown correction"):
        adjust(np.array([0.1]), "holm")
