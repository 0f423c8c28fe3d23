"""Domain-classifier AUC test against scipy's Mann-Whitney and sklearn's AUC."""

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from detectors.stats.domain_classifier import auc_permutation_pvalue, auc_test, domain_classifier_test


def test_auc_and_pvalue_match_scipy_and_sklearn():
    rng = np.random.default_rng(1)
    pos, neg = rng.normal(0.3, 1, 120).round(1), rng.normal(0, 1, 150).round(1)  # with ties
    auc, p = auc_test(pos, neg)
    ref = stats.mannwhitneyu(pos, neg, alternative="greater", method="asymptotic",
                             use_continuity=False)
    labels = np.r_[np.ones(pos.size), np.zeros(neg.size)]
    assert auc == pytest.approx(roc_auc_score(labels, np.r_[pos, neg]))
    assert auc == pytest.approx(ref.statistic / (pos.size * neg.size))
    assert p == pytest.approx(ref.pvalue, rel=1e-9)


def test_permutation_pvalue_agrees_with_normal_approximation():
    rng = np.random.default_rng(2)
    pos, neg = rng.normal(0.2, 1, 200), rng.normal(0, 1, 200)
    _, p_normal = auc_test(pos, neg)
    labels = np.r_[np.ones(200), np.zeros(200)]
    p_perm = auc_permutation_pvalue(np.r_[pos, neg], labels, 2000, seed=0)
    assert p_perm == pytest.approx(p_normal, abs=0.02)


def test_detects_shift_and_ranks_new_inputs_first():
    rng = np.random.default_rng(3)
    ref = rng.normal(0, 1, (300, 5))
    win = rng.normal(0, 1, (200, 5))
    win[:40, 2] += 4.0  # 40 clearly new inputs
    res = domain_classifier_test(ref, win, seed=0)
    assert res.auc > 0.55 and res.p_value < 0.01
    top = np.argsort(-res.window_scores)[:20]
    assert np.mean(top < 40) >= 0.9


def test_null_is_calibrated_or_conservative():
    rng = np.random.default_rng(4)
    p = np.array([domain_classifier_test(rng.normal(0, 1, (60, 3)), rng.normal(0, 1, (60, 3)),
                                         n_folds=3, seed=i).p_value for i in range(150)])
    assert np.mean(p <= 0.05) <= 0.10
    assert np.mean(p <= 0.5) >= 0.35  # not degenerate


def test_deterministic_under_seed():
    rng = np.random.default_rng(5)
    ref, win = rng.normal(0, 1, (80, 4)), rng.normal(0.2, 1, (80, 4))
    a, b = domain_classifier_test(ref, win, seed=3), domain_classifier_test(ref, win, seed=3)
    assert a.auc == b.auc and np.array_equal(a.window_scores, b.window_scores)
