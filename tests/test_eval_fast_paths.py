"""The evaluation's faster forms give what the plain forms gave: the saddlepoint-space inverse of
the weighted chi-square tail against the nested root search it replaced, the KS sf/isf without
scipy's distribution wrapper bit for bit against ``scipy.stats.kstwo``, and ``jsonable``'s fast
paths against a plain element walk."""

import json
import math
from types import MappingProxyType

import numpy as np
import pytest
from scipy import optimize, stats

from detectors._verdict import jsonable
from detectors.stats import subspace
from detectors.stats import univariate as uni
from monitor.contract import Status
from tests.ks_support import quantile_close


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


@pytest.mark.parametrize("en", [1, 2, 3, 7, 50, 140, 141, 500, 2000, 9999, 10_000])
def test_kstwo_sf_without_the_wrapper_is_scipys(en):
    # within 1e-12, relative: detectors.stats.kolmogorov repeats scipy's operations in scipy's
    # order (bit for bit on this grid on x86-64 without AVX-512), but numpy's AVX-512 builds
    # compute exp/pow of arrays a few ulps away from math's (tests/test_stats_kolmogorov.py)
    d = np.concatenate([np.linspace(0, 1, 201), [0.5 / en, 1 / en, 0.5 / en + 1e-12,
                                                  1 - 1e-12, 1.5, -0.1, np.nan]])
    want = stats.kstwo.sf(d, en)
    assert np.allclose(uni._kstwo_sf(d, float(en)), want, rtol=1e-12, atol=0, equal_nan=True)
    for x in d[::23]:
        got, want = uni._kstwo_sf(np.float64(x), float(en)), stats.kstwo.sf(x, en)
        assert got == pytest.approx(want, rel=1e-12, abs=0, nan_ok=True)


def test_ks_pvalue_and_critical_are_scipys_values():
    rng = np.random.default_rng(3)
    for _ in range(80):
        n, m = (int(v) for v in rng.integers(1, 30_000, 2))
        d = float(rng.uniform(0, 0.3))
        en = float(np.round(n * m / (n + m)))
        want = (float(np.clip(stats.kstwo.sf(d, en), 0, 1)) if en <= uni.EXACT_KS_MAX_N
                else None)
        got = uni.ks_pvalue(d, n, m)
        assert want is None or got == pytest.approx(want, rel=1e-12, abs=0, nan_ok=True)
        assert np.array_equal(uni.ks_pvalues(np.array([d, d / 2]), n, m),
                              [got, uni.ks_pvalue(d / 2, n, m)], equal_nan=True)
    for en in (1, 5, 141, 800, 10_000):
        for alpha in (1e-9, 1e-4, 0.0123, 0.5, 0.99):
            assert quantile_close(uni._ks_critical.__wrapped__(alpha, float(en)),
                                  float(stats.kstwo.isf(alpha, en)), alpha, en), (en, alpha)
    assert uni.ks_critical(0.01, 300, 700) == uni.ks_critical(0.01, 700, 300)


def walk(value):
    """jsonable as a plain element walk (the behaviour its fast paths must keep)."""
    if isinstance(value, (dict, MappingProxyType)):
        return {str(k): walk(v) for k, v in value.items()}
    if isinstance(value, (np.ndarray, list, tuple)):
        return [walk(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def test_jsonable_fast_paths_give_the_plain_walk():
    rng = np.random.default_rng(5)
    leaves = [lambda: float(rng.normal()), lambda: math.nan, lambda: -math.inf,
              lambda: np.float64(rng.normal()), lambda: np.float64("nan"), lambda: np.float32(2),
              lambda: int(rng.integers(9)), lambda: np.int64(3), lambda: np.int32(4),
              lambda: True, lambda: np.bool_(False), lambda: None, lambda: "id-1",
              lambda: Status.ALERT, lambda: 10 ** 400, lambda: rng.normal(size=3),
              lambda: np.array([1.0, np.inf]), lambda: np.arange(3), lambda: np.array([True]),
              # 1-D float arrays are checked by the sum of their elements: an overflowing sum
              # of finite values, -0.0, NaN, float32/float16, empty, and 2-D arrays
              lambda: np.array([1e308, 1e308, -0.0]), lambda: np.array([-0.0, np.nan]),
              lambda: np.array([np.inf, -np.inf]), lambda: np.zeros(0),
              lambda: rng.normal(size=4).astype(np.float32), lambda: np.array([np.nan], np.float16),
              lambda: rng.normal(size=(3, 2)), lambda: np.array([[1.0], [np.nan]]),
              lambda: -0.0, lambda: np.float64(-0.0), lambda: np.float64(np.inf),
              lambda: MappingProxyType({1: np.float64(-0.0), "b": (np.inf, 2.0)})]

    def tree(depth):
        r = rng.random()
        if depth > 3 or r < 0.4:
            return leaves[rng.integers(len(leaves))]()
        if r < 0.6:
            return {f"k{i}": tree(depth + 1) for i in range(rng.integers(0, 5))}
        if r < 0.8:
            return [tree(depth + 1) for _ in range(rng.integers(0, 5))]
        if r < 0.9:
            return tuple(float(x) for x in rng.normal(size=rng.integers(0, 4)))
        return [f"ev-{i}" for i in range(rng.integers(0, 4))]

    def types(x):
        if isinstance(x, dict):
            return {k: types(v) for k, v in x.items()}
        return [types(v) for v in x] if isinstance(x, list) else type(x)

    for _ in range(3000):
        v = tree(0)
        got, want = jsonable(v), walk(v)
        assert json.dumps(got) == json.dumps(want) and types(got) == types(want)
