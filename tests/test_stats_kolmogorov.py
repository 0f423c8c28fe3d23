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


def _dmtw_points() -> list[tuple[int, float]]:
    """Durbin's matrix at awkward sizes and statistics: tiny ``n`` (its float64 product never
    rescales), ``n`` at the 140/141 cut-off, huge ``n`` (hundreds of long double rescalings),
    ``n d`` just above 1/2 and 1, exactly an integer (``h = 0``) and just below one, and
    both ends of the region each branch of ``_kolmogn`` sends to it."""
    points = []
    for n in (1, 2, 3, 4, 5, 7, 10, 33, 139, 140, 141, 142, 450, 1000, 9999, 10_000, 100_000):
        top = math.sqrt(0.754693 / n) if n <= 140 else (1.4 / n) ** (2 / 3)
        for nd in (0.5 + 1e-9, 0.75, 1.0, 1.0 + 1e-12, 1.5, 2.0, 2.0 - 1e-12, 3.0, 7.25):
            if nd / n <= top:
                points.append((n, nd / n))
        points += [(n, top), (n, top * (1 - 1e-15)), (n, top / 2)]
    return [(n, d) for n, d in points if 0.5 < n * d and d < 1]  # where scipy's runs its matrix


def test_durbin_matrix_is_scipys_bit_for_bit():
    # The fast path reorders no arithmetic: every result (a long double once rescaled, else a
    # float64) must equal scipy's, type included -- a wrong step, rescaling or matrix entry
    # changes the last bits.
    from scipy.stats._ksstats import _kolmogn_DMTW
    for n, d in _dmtw_points():
        want = np.asarray(_kolmogn_DMTW(n, d, cdf=True))[()]
        got = kolmogorov._dmtw(n, d)
        assert got == want and np.asarray(got).dtype == want.dtype, (n, d, got, want)


def _pelz_good_reference(n: int, x: float) -> float:
    """The Pelz-Good CDF as written before its terms were tabulated: scipy's operations, one
    list per series (the statement-by-statement transcription the fast path must equal)."""
    z = math.sqrt(n) * x
    z2, z3, z4, z6 = z ** 2, z ** 3, z ** 4, z ** 6
    if -math.pi ** 2 / 8 / z2 < -708:
        return 0.0
    pi2, pi4, pi6 = math.pi ** 2, math.pi ** 4, math.pi ** 6
    q = math.exp(-pi2 / 8 / z2)
    coef = [(1.0, 0.0, 0.0, 0.0), (-z2, pi2 / 4, 0.0, 0.0),
            (6 * z6 + 2 * z4, (2 * z4 - 5 * z2) * pi2 / 4, pi4 * (1 - 2 * z2) / 16, 0.0),
            (-30 * z6 - 90 * z ** 8, pi2 * (135 * z4 - 96 * z6) / 4,
             pi4 * (-60 * z2 + 212 * z4) / 16, pi6 * (5 - 30 * z2) / 64)]
    maxk = int(math.ceil(16 * z / math.pi))
    sums = [0.0] * 4
    for k in range(maxk, 0, -1):
        m = 2 * k - 1
        for i, (a, b, c, e) in enumerate(coef):
            term = a if i == 0 else (a + b * m ** 2 if i == 1 else (
                a + b * m ** 2 + c * m ** 4 if i == 2 else a + b * m ** 2 + c * m ** 4 + e * m ** 6))
            sums[i] = sums[i] * q ** (8 * k) + term
    root = math.sqrt(2 * math.pi)
    sums = [s * q * root for s in sums]
    s0, s1, s2, s3 = sums[0] / z, sums[1] / (6 * z4), sums[2] / (72 * z ** 7), sums[3] / (
        6480 * z ** 10)
    q = math.exp(-pi2 / 2 / z2)
    ks = range(maxk, 0, -1)
    s2 += floatsum.numpy_sum([(k * k) * q ** (k * k) for k in ks]) * (
        pi2 * root / (-36 * z3))
    r3 = math.sqrt(3) * z
    s3 += floatsum.numpy_sum([(r3 + math.pi * k) * (r3 - math.pi * k) * (k * k) * q ** (k * k)
                              for k in ks]) * (pi2 * root / (216 * z6))
    return ((s0 + s1 / n ** 0.5) + s2 / n) + s3 / n ** 1.5


def test_pelz_good_equals_its_plain_transcription():
    # z from where the CDF underflows to past pi (where the tabulated odd powers end) and
    # past sqrt(18) (the largest the CDF's branch sends): fewer than 8, 8-16, > 16 terms
    for n in (141, 450, 2000, 10_000, 100_001, 10 ** 7):
        for z in [0.04, 0.0418, *np.linspace(0.05, 4.5, 240).tolist(), math.pi, 3.2]:
            x = z / math.sqrt(n)
            assert kolmogorov._pelz_good_cdf(n, x) == _pelz_good_reference(n, x), (n, z)
