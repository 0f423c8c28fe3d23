"""Decisions that survive repeated looks: alpha spending, exact tests, confidence sequences."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from detectors._verdict import look_alpha
from detectors.stats import sequential as seq
from detectors.version_health import VersionHealth, compare
from monitor.testing import synthetic_batch


@pytest.mark.parametrize("alpha", [0.05, 0.01, 1e-4])
def test_spending_sums_to_at_most_alpha_over_any_number_of_looks(alpha):
    shares = np.array([look_alpha(alpha, k) for k in range(2000)])
    assert shares[0] == pytest.approx(0.9 * alpha)
    assert np.all(shares > 0) and np.all(np.diff(shares) <= 0)
    assert np.cumsum(shares).max() <= alpha


def test_fisher_matches_scipy_and_the_issue_example():
    # issue 12: 3/400 canary errors vs 2/2000 baseline: z-test p = 0.0046, Fisher 0.035
    assert float(seq.fisher_greater(3, 400, 2, 2000)) == pytest.approx(0.035333, abs=1e-6)
    for x1, n1, x2, n2 in [(0, 50, 3, 70), (9, 42, 2, 94), (30, 1000, 10, 1000)]:
        want = stats.fisher_exact([[x1, n1 - x1], [x2, n2 - x2]], alternative="greater").pvalue
        assert float(seq.fisher_greater(x1, n1, x2, n2)) == pytest.approx(want, rel=1e-9)


def _health(n: int, errors: int):
    det = VersionHealth()
    batch = synthetic_batch(n=n, seed=n + errors)
    is_error = np.zeros(n, bool)
    is_error[:errors] = True
    from dataclasses import replace
    return det, det.observe(det.empty(), replace(batch, is_error=is_error))


def test_rare_canary_errors_are_not_a_rollback_at_001():
    det, canary = _health(400, 3)
    _, base = _health(2000, 2)
    f = compare(det, canary, base, "1", alpha=0.01, n_tests=1, min_samples=30)
    err = next(t for t in f.details["tests"] if t["metric"] == "error_rate")
    assert err["p_value"] == pytest.approx(0.0353, abs=1e-4)
    assert f.details["verdict"] == "no significant regression"
    # a real regression still is one, and later looks need more evidence
    det, bad = _health(400, 30)
    first = compare(det, bad, base, "1", alpha=0.01, n_tests=1, min_samples=30)
    assert first.details["verdict"] == "rollback recommended" and first.severity.value == "page"
    assert compare(det, bad, base, "1", 0.01, 1, 30, look=3).details["alpha"] == look_alpha(0.01, 3)


def test_clopper_pearson_is_scipys_exact_interval():
    lo, hi = seq.clopper_pearson(17, 60, 0.05)
    ci = stats.binomtest(17, 60).proportion_ci(0.95, method="exact")
    assert (float(lo), float(hi)) == pytest.approx((ci.low, ci.high), rel=1e-9)


@pytest.mark.parametrize("p", [0.6, 0.95])
def test_confidence_sequence_covers_over_20_label_batches(p):
    """Seeded: 5,000 windows whose labels arrive in 20 batches of 40; the upper bound must stay
    above the true accuracy at every look in at least 1 - alpha of them."""
    rng = np.random.default_rng(12)
    alpha, windows = 0.01, 5_000
    x = np.zeros(windows)
    missed = np.zeros(windows, bool)
    naive = np.zeros(windows, bool)
    for k in range(1, 21):
        x += rng.binomial(40, p, windows)
        n = 40 * k
        missed |= seq.upper_cs(x, n, alpha, p) < p
        naive |= seq.clopper_pearson(x, n, 2 * alpha)[1] < p  # a one-look bound, looked at 20x
    assert missed.mean() <= alpha
    assert naive.mean() > missed.mean()  # repeated one-look intervals lose their level


def test_confidence_sequence_has_power():
    # 85 % realised against 95 %: excluded after a few hundred labels
    assert float(seq.upper_cs(255, 300, 0.01 / 17, 0.95)) < 0.93
