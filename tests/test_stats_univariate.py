"""Univariate statistics and the grid sketch against independent implementations (scipy)."""

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from detectors.stats import categories as cats
from detectors.stats import histograms as hist
from detectors.stats import univariate as uni

RNG_SEED = 20240611


@pytest.fixture
def rng():
    return np.random.default_rng(RNG_SEED)


def test_ks_samples_matches_scipy(rng):
    for n, m, shift in [(50, 80, 0.0), (400, 300, 0.2), (2000, 1500, 0.05)]:
        x, y = rng.normal(0, 1, n), rng.normal(shift, 1.2, m)
        ref = stats.ks_2samp(x, y, method="asymp")
        d, p = uni.ks_samples(x, y)
        assert d == pytest.approx(ref.statistic, abs=1e-12)
        assert p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-15)


def test_ks_samples_with_ties_matches_scipy(rng):
    x, y = rng.integers(0, 10, 300).astype(float), rng.integers(0, 11, 250).astype(float)
    ref = stats.ks_2samp(x, y, method="asymp")
    d, p = uni.ks_samples(x, y)
    assert (d, p) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-9)


def test_ks_counts_equals_exact_ks_when_bins_hold_one_value(rng):
    # Integer data on unit bins: the histogram KS is the exact KS.
    x, y = rng.poisson(5, 700), rng.poisson(5.4, 500)
    edges = np.arange(0, 30)
    cx, cy = np.histogram(x, edges)[0], np.histogram(y, edges)[0]
    ref = stats.ks_2samp(x, y, method="asymp")
    assert uni.ks_counts(cx, cy) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-9)


def test_ks_on_fine_grid_is_close_to_exact_and_never_larger(rng):
    x, y = rng.lognormal(3, 0.3, 3000), rng.lognormal(3.02, 0.3, 3000)
    lo, cx, cy = hist.align(*hist.count(hist.REAL, x), *hist.count(hist.REAL, y))
    d_grid, p_grid = uni.ks_counts(cx, cy)
    d, p = uni.ks_samples(x, y)
    assert d_grid <= d + 1e-12 and d - d_grid < 0.01
    assert p_grid >= p


def test_ks_critical_inverts_pvalue():
    for n, m in [(100, 100), (5000, 300), (40_000, 50_000)]:
        d = uni.ks_critical(0.01, n, m)
        assert uni.ks_pvalue(d, n, m) == pytest.approx(0.01, rel=1e-4)


def test_chi2_homogeneity_matches_scipy_contingency(rng):
    ref, win = rng.integers(5, 80, 7), rng.integers(5, 80, 7)
    stat, p, dof = uni.chi2_homogeneity(ref, win)
    expected = stats.chi2_contingency(np.vstack([ref, win]), correction=False)
    assert (stat, p, dof) == pytest.approx((expected.statistic, expected.pvalue, expected.dof))


def test_chi2_homogeneity_drops_bins_empty_on_both_sides():
    s1 = uni.chi2_homogeneity(np.array([10, 0, 20, 5]), np.array([12, 0, 18, 7]))
    s2 = uni.chi2_homogeneity(np.array([10, 20, 5]), np.array([12, 18, 7]))
    assert s1 == pytest.approx(s2)


def test_chi2_gof_matches_scipy_chisquare(rng):
    obs = rng.integers(10, 50, 6)
    freq = rng.dirichlet(np.ones(6))
    stat, p = uni.chi2_gof(obs, freq)
    ref = stats.chisquare(obs, freq * obs.sum())
    assert (stat, p) == pytest.approx((ref.statistic, ref.pvalue))


def test_pool_sparse_ordered_and_unordered():
    ref, win = np.array([100, 2, 1, 50, 1]), np.array([100, 1, 0, 50, 2])
    r, w = uni.pool_sparse(ref, win, 5, ordered=True)
    assert r.sum() == ref.sum() and w.sum() == win.sum()
    assert np.all((r + w) * win.sum() / (ref.sum() + win.sum()) >= 5)
    r, w = uni.pool_sparse(ref, win, 5, ordered=False)  # the rare pool (7) is still too small:
    assert r.tolist() == [100, 54] and w.tolist() == [100, 53]  # it joins the last bin


def test_pool_sparse_is_driven_by_the_smaller_sample(rng):
    """A 200-event reference against 5,000 window events: every pooled bin has an expected
    reference count of at least 20 (pooling by the window's expected counts alone left bins
    with a handful of reference events and rejected several times too often at alpha/85)."""
    p = 1 / np.arange(1, 31) ** 1.2
    ref, win = rng.multinomial(200, p / p.sum()), rng.multinomial(5000, p / p.sum())
    for ordered in (True, False):
        r, w = uni.pool_sparse(ref, win, ordered=ordered)
        assert r.sum() == 200 and w.sum() == 5000 and r.size >= 2
        assert np.all((r + w) * 200 / 5200 >= uni.MIN_EXPECTED)


def test_chi2_with_a_small_reference_is_calibrated_in_the_tail():
    """Seeded Monte Carlo: 30 Zipf categories, 200 reference vs 5,000 window events, stationary.
    The false-rejection rate at alpha = 0.01/17 stays near nominal (it was 3.3x)."""
    rng = np.random.default_rng(5)
    p = 1 / np.arange(1, 31) ** 1.2
    p /= p.sum()
    level, runs = 0.01 / 17, 20_000
    ref, win = rng.multinomial(200, p, runs), rng.multinomial(5000, p, runs)
    rejected = sum(uni.chi2_homogeneity(*uni.pool_sparse(r, w))[1] <= level
                   for r, w in zip(ref, win))
    assert rejected / runs <= 1.7 * level  # 11.8 expected at nominal: 1.7x is ~2.4 sigma


def test_wasserstein_matches_scipy_on_integer_data(rng):
    x, y = rng.integers(0, 20, 500), rng.integers(2, 25, 400)
    edges = np.arange(0, 26)
    cx, cy = np.histogram(x, edges)[0], np.histogram(y, edges)[0]
    assert uni.wasserstein_counts(edges, cx, cy) == pytest.approx(
        stats.wasserstein_distance(x, y), rel=1e-12)


def test_wasserstein_on_grid_is_within_bin_width(rng):
    x, y = rng.normal(10, 2, 4000), rng.normal(10.5, 2, 4000)
    lo, cx, cy = hist.align(*hist.count(hist.REAL, x), *hist.count(hist.REAL, y))
    w = uni.wasserstein_counts(hist.bin_edges(hist.REAL, lo, cx.size), cx, cy)
    assert w == pytest.approx(stats.wasserstein_distance(x, y), abs=0.002 * 20)


def test_js_distance_matches_scipy(rng):
    p, q = rng.integers(0, 30, 9), rng.integers(0, 30, 9)
    p[0], q[1] = 0, 0
    assert uni.js_distance(p, q) == pytest.approx(jensenshannon(p, q, base=2), rel=1e-12)
    assert uni.js_distance(p, p) == pytest.approx(0.0, abs=1e-7)


def test_psi_matches_formula_and_flooring():
    ref, win = np.array([50, 30, 20, 0]), np.array([40, 30, 20, 10])
    r = np.maximum(ref / 100, 1e-4)
    w = np.maximum(win / 100, 1e-4)
    assert uni.psi(ref, win) == pytest.approx(float(np.sum((w - r) * np.log(w / r))))
    assert uni.psi(ref, ref) == 0.0


def test_empty_inputs_give_nan_not_errors():
    assert all(math.isnan(v) for v in uni.ks_counts(np.zeros(3), np.ones(3)))
    assert math.isnan(uni.wasserstein_counts(np.arange(4.0), np.zeros(3), np.ones(3)))
    assert uni.chi2_homogeneity(np.zeros(3), np.ones(3))[1] == 1.0


# --- the grid sketch ---------------------------------------------------------------------------

def test_grid_bins_are_consistent_with_edges(rng):
    for grid, x in [(hist.REAL, rng.normal(0, 50, 5000)), (hist.UNIT, rng.beta(0.5, 0.5, 5000))]:
        lo, c = hist.count(grid, x)
        edges = hist.bin_edges(grid, lo, c.size)
        idx = hist.bin_index(grid, x) - lo
        inside = (x >= edges[idx] * (1 - 1e-9) - 1e-12) & (x <= edges[idx + 1] * (1 + 1e-9) + 1e-12)
        assert inside.all()


def test_real_grid_relative_resolution():
    e = hist.bin_edges(hist.REAL, hist.bin_index(hist.REAL, np.array([100.0]))[0], 1)
    assert (e[1] - e[0]) / e[0] == pytest.approx(0.002, rel=0.01)


def test_unit_grid_resolves_high_confidences():
    idx = hist.bin_index(hist.UNIT, np.array([0.99, 0.999, 0.9999]))
    assert len(set(idx.tolist())) == 3


def test_sketch_merge_is_exact_associative_and_commutative(rng):
    parts = [rng.lognormal(2, 1, k) for k in (100, 1, 5000)]
    sk = [hist.count(hist.REAL, p) for p in parts]
    whole = hist.count(hist.REAL, np.concatenate(parts))
    left = hist.merge(*hist.merge(*sk[0], *sk[1]), *sk[2])
    right = hist.merge(*sk[0], *hist.merge(*sk[1], *sk[2]))
    swapped = hist.merge(*sk[2], *hist.merge(*sk[1], *sk[0]))
    for got in (left, right, swapped):
        assert got[0] == whole[0] and np.array_equal(got[1], whole[1])


def test_quantile_cuts_fold_exactly(rng):
    x = rng.normal(0, 1, 10_000)
    lo, c = hist.count(hist.REAL, x)
    cuts = hist.quantile_cuts(c, 10)
    q = hist.fold(c, cuts)
    assert q.sum() == 10_000 and len(q) == 10
    assert np.all(np.abs(q - 1000) < 60)  # equal mass up to one grid bin
    edges = hist.bin_edges(hist.REAL, lo, c.size)[np.append(cuts, c.size)]
    assert np.array_equal(np.histogram(x, edges)[0][1:-1], q[1:-1]) or \
        np.abs(np.histogram(x, edges)[0] - q).max() <= 2  # edge rounding only


def test_quantile_cuts_of_a_constant_feature():
    lo, c = hist.count(hist.REAL, np.full(100, 224.0))
    assert hist.fold(c, hist.quantile_cuts(c, 10)).tolist() == [100]


def test_moments_from_sketch(rng):
    x = rng.normal(50, 5, 20_000)
    mean, std = hist.moments(hist.REAL, *hist.count(hist.REAL, x))
    assert mean == pytest.approx(x.mean(), rel=1e-3) and std == pytest.approx(x.std(), rel=1e-2)


def test_ks_pvalue_for_large_samples_is_within_one_percent_of_kstwo():
    n = m = 100_000  # effective size 50,000: the corrected limiting distribution
    for p in (0.3, 0.01, 1e-4, 1e-6):
        d = stats.kstwo.isf(p, 50_000)
        assert uni.ks_pvalue(d, n, m) == pytest.approx(p, rel=0.01)
    assert uni.ks_pvalue(uni.ks_critical(0.001, n, m), n, m) == pytest.approx(0.001, rel=1e-9)


@pytest.mark.parametrize("ordered", [True, False])
def test_pooled_chi2_on_many_rows_equals_the_one_row_functions(rng, ordered):
    p = 1 / np.arange(1, 26) ** 1.3
    ref = rng.multinomial(200, p / p.sum(), 300)
    win = rng.multinomial(3000, p / p.sum(), 300)
    ref[:5, :] = 0  # an empty side: no test
    stat, pv = uni.chi2_pooled_rows(ref, win, ordered=ordered)
    for i in range(300):
        s1, p1, _ = uni.chi2_homogeneity(*uni.pool_sparse(ref[i], win[i], ordered=ordered))
        assert (stat[i], pv[i]) == pytest.approx((s1, p1), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("distinct", [5, 3000])  # a dense table; many values: group by group
def test_group_category_counts_equal_each_groups_own_counts(distinct):
    rng = np.random.default_rng(distinct)
    pool = np.array([f"v{i}" for i in range(distinct)] + [None], dtype=object)
    values = pool[rng.integers(0, len(pool), 2000)]
    names, hashes, code = cats.codes(values)
    groups = [np.arange(2000), np.flatnonzero(rng.random(2000) < 0.1), np.zeros(0, np.int64),
              np.flatnonzero(values == None), np.array([3, 1, 3])]  # noqa: E711
    got = cats.group_count_codes(names, hashes, code, groups, 4)
    for g, (n, c, other) in zip(groups, got, strict=True):
        want = cats.count(values[g], 4)
        assert (n, c.tolist(), other) == (want[0], want[1].tolist(), want[2])
        assert c.dtype == np.int64


@pytest.mark.parametrize("values", [
    ["b", "a", None, "b"],
    ["a", np.str_("a"), None],
    [np.str_("a"), "a", "b"],
    [1, 1.0, "1", None, float("nan"), True],
])
def test_category_codes_count_as_the_values_strings(values):
    arr = np.array(values + [object()], dtype=object)[:len(values)]  # an object array
    names, hashes, code = cats.codes(arr)
    got, want = cats.count_codes(names, hashes, code, 100), cats.count(arr, 100)
    assert (got[0], got[1].tolist(), got[2]) == (want[0], want[1].tolist(), want[2])


@pytest.mark.parametrize("n,m", [(1, 1), (1, 2), (2, 2), (3, 3), (5, 5), (7, 9), (100, 100),
                                 (137, 5000), (2000, 2000), (19_999, 20_001), (20_000, 20_000),
                                 (20_001, 20_001), (10 ** 6, 3)])
def test_ks_pvalue_of_one_value_is_the_array_path(n, m):
    # ks_pvalue answers one statistic without arrays: the same value as ks_pvalues' (type
    # float), for sizes whose effective size is 0 (NaN), a tie rounded to even (n = m odd),
    # the exact limit 10,000 and just past it (Stephens' asymptotic form)
    en = n * m / (n + m)
    assert uni._en(n, m) == float(np.round(en))
    for d in (0.0, 0.5 / max(en, 1), 1e-3, 0.02, 0.1, 0.3, 0.5, 0.9, 1.0, 1.5, math.nan):
        got, want = uni.ks_pvalue(d, n, m), float(uni.ks_pvalues(np.array([d]), n, m)[0])
        assert type(got) is float
        assert got == want or (math.isnan(got) and math.isnan(want)), (n, m, d, got, want)


def test_counts_statistics_equal_their_numpy_formulas(rng):
    # the statistics' numpy calls were made cheaper, not different: equal bit for bit
    for k in (1, 2, 5, 40):
        for _ in range(20):
            r, w = rng.poisson(rng.uniform(0.1, 50), k), rng.poisson(rng.uniform(0.1, 50), k)
            r[0] += 1
            w[-1] += 1
            edges = np.cumsum(rng.uniform(0.1, 2.0, k + 1))
            n, m = r.sum(), w.sum()
            gap = np.abs(np.cumsum(r) / n - np.cumsum(w) / m)
            assert uni.ks_counts(r, w)[0] == float(np.max(gap))
            assert uni.wasserstein_counts(edges, r, w) == float(np.sum(gap[:-1]
                                                                       * np.diff(edges)[:-1]))
            pr, pw = np.maximum(r / n, uni.PSI_EPS), np.maximum(w / m, uni.PSI_EPS)
            assert uni.psi(r, w) == float(np.sum((pw - pr) * np.log(pw / pr)))
            p, q = r / n, w / m
            mid = 0.5 * (p + q)
            kl = [float(np.sum(a[a > 0] * np.log(a[a > 0] / mid[a > 0]))) for a in (p, q)]
            assert uni.js_distance(r, w) == math.sqrt(max(0.5 * (kl[0] + kl[1]) / math.log(2),
                                                          0.0))
