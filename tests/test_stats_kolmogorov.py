"""detectors.stats.kolmogorov against scipy's kstwo, on a grid that enters every branch.

The tolerance is relative 1e-12, though on the x86-64 machines this was written on the values
are equal bit for bit (the module repeats scipy's operations in scipy's order): numpy builds
for AVX-512 compute ``exp``/``pow`` of float64 arrays with SIMD code a few ulps away from the C
library's, which :mod:`math` calls, and ``1 - cdf`` can magnify an ulp of the CDF by ~50 (the
Pelz-Good branch serves p-values from ~0.02 up).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from detectors.stats import floatsum, kolmogorov
from tests.ks_support import quantile_close

REL = 1e-12
SIZES = [1, 2, 3, 4, 5, 7, 10, 20, 50, 100, 139, 140, 141, 142, 300, 1000, 2000, 5000, 9999,
         10_000]


def branch_points(n: int) -> dict[str, list[float]]:
    """Statistics in each region of scipy's ``_kolmogn`` for size ``n`` (some empty for small
    ``n``, where the regions overlap and the earlier test in scipy's order wins)."""
    regions = {
        "support: sf is 1 up to 1/(2n), 0 from 1 on": [0.0, 0.5 / n, 1.0, 1.5],
        "Ruben-Gambino, 1/(2n) < d <= 1/n": [0.5 / n + 1e-12, 0.75 / n, 1 / n],
        "Ruben-Gambino, d >= 1 - 1/n": [1 - 1 / n, 1 - 0.5 / n, 1 - 1e-12],
        "exact 2 * smirnov, d >= 1/2": [0.5, 0.5 + 1e-12, 0.7],
    }
    small = {  # n <= 140
        "Durbin's matrix (Marsaglia-Tsang-Wang), n d^2 <= 0.754693": [0.5, 0.754693],
        "Pomeranz's recursion, 0.754693 < n d^2 <= 4": [0.76, 2.0, 4.0],
        "Miller's 2 * smirnov, n d^2 > 4": [4.01, 8.0, 50.0],
    }
    large = {  # n > 140
        "Durbin's matrix, n d^1.5 <= 1.4": [],
        "Pelz-Good, n d^2 < 2.2 and n d^1.5 > 1.4": [0.5, 1.0, 2.0, 2.19],
        "2 * smirnov, 2.2 <= n d^2 < 370": [2.2, 10.0, 100.0, 369.9],
        "0 from n d^2 >= 370": [370.0, 500.0],
    }
    for name, nd2 in (small if n <= 140 else large).items():
        regions[name] = [math.sqrt(v / n) for v in nd2]
    if n > 140:
        regions["Durbin's matrix, n d^1.5 <= 1.4"] = [(1.0 / n) ** (2 / 3), (1.4 / n) ** (2 / 3)]
    return {name: [d for d in ds if d <= 1.5] for name, ds in regions.items()}


def close(got: float, want: float) -> bool:
    return got == want or (math.isnan(got) and math.isnan(want)) or abs(got - want) <= REL * abs(
        want)


@pytest.mark.parametrize("n", SIZES)
def test_sf_and_cdf_are_scipys(n, monkeypatch):
    calls: set[str] = set()
    for name in ("_dmtw", "_pomeranz", "_two_smirnov", "_pelz_good_cdf",
                 "_log_factorial_over_power"):
        real = getattr(kolmogorov, name)
        monkeypatch.setattr(kolmogorov, name,
                            lambda *a, _real=real, _name=name: calls.add(_name) or _real(*a))
    grid = np.linspace(0, 1, 61).tolist()
    for region, ds in branch_points(n).items():
        for d in ds + grid:
            want = float(stats.kstwo.sf(d, n))
            assert close(kolmogorov.sf(d, n), want), (region, n, d)
            if 0 < d < 1:
                want_cdf = float(stats.kstwo.cdf(d, n))
                assert close(kolmogorov.cdf(d, n), want_cdf), (region, n, d)
        grid = []
    assert math.isnan(kolmogorov.sf(math.nan, n))
    # the grid reached every algorithm scipy would use at this size
    if n > 140:
        assert calls >= {"_dmtw", "_two_smirnov", "_pelz_good_cdf", "_log_factorial_over_power"}
    elif n >= 10:
        assert calls >= {"_dmtw", "_pomeranz", "_two_smirnov"}


@pytest.mark.parametrize("n", [1, 2, 3, 5, 10, 50, 139, 140, 141, 142, 500, 1000, 5000, 10_000])
def test_isf_is_scipys(n):
    # tiny alpha at small n: the closed form near d = 1; alpha near 1: the one near 1/(2n);
    # between: scipy's brentq over the CDF's branches
    for alpha in (1e-12, 1e-9, 1e-6, 1e-4, 1e-3, 0.0123, 0.05, 0.3, 0.5, 0.9, 0.99, 1 - 1e-9):
        got, want = kolmogorov.isf(alpha, n), float(stats.kstwo.isf(alpha, n))
        assert quantile_close(got, want, alpha, n), (n, alpha)
        if 1 / n < got < 1 - 1 / n:  # a root of what scipy inverts: the CDF, not sf (for n >
            # 140 they use different approximations past n d^2 = 2.2, ~5e-4 apart at n = 141)
            assert kolmogorov.cdf(got, n) == pytest.approx(1 - alpha, abs=1e-11)  # xtol 1e-14 * pdf


def test_numpy_sum_adds_in_numpys_order():
    # magnitudes over 10 decades, so a different order of additions changes the last bits
    rng = np.random.default_rng(7)
    for n in [*range(0, 40), 127, 128, 129, 300, 1000]:
        for _ in range(5):
            xs = rng.normal(size=n) * 10.0 ** rng.uniform(-5, 5, size=n)
            assert floatsum.numpy_sum(xs.tolist()) == float(np.sum(xs)), n
