"""Comparing two computations of a KS quantile (``detectors.stats.kolmogorov`` vs scipy)."""

from __future__ import annotations

from scipy import stats

REL = 1e-12
#: A few ulps of 1.0: how far two evaluations of the KS CDF near 1 differ when one takes
#: ``exp``/``pow`` from numpy's AVX-512 code and the other from the C library (the module uses
#: :mod:`math`; scipy numpy arrays). On AVX2 hosts both are the C library's and equal.
CDF_NOISE = 4 * 2.0**-53


def quantile_close(got: float, want: float, alpha: float, n: float) -> bool:
    """``got`` and ``want`` are the same root of ``cdf(d) = 1 - alpha``, to the precision the
    problem allows: relative 1e-12, or, where the CDF is nearly flat (tiny ``alpha``: its slope
    is ~``alpha * 4 n d``), as far as a few ulps of the CDF move the root (``CDF_NOISE`` over
    the slope): at n = 141 and alpha = 1e-12, ~3e-6."""
    if got == want or abs(got - want) <= REL * abs(want):
        return True
    h = 1e-6 * want
    slope = float(stats.kstwo.sf(want - h, n) - stats.kstwo.sf(want + h, n)) / (2 * h)
    return slope > 0 and abs(got - want) <= CDF_NOISE / slope
