"""The two-sided one-sample Kolmogorov distribution ``kstwo`` at one statistic, fast.

``sf(d, n)`` is ``scipy.stats.kstwo.sf(d, n)`` and ``isf(alpha, n)`` is ``kstwo.isf(alpha, n)``
for an integer effective size ``n``: the same algorithm as scipy's ``_ksstats._kolmogn`` (Simard
& L'Ecuyer 2011), branch for branch and with the same cut-offs, so a p-value is computed by the
same formula as scipy's. What differs is the bookkeeping, not the maths:

* scipy evaluates Pelz-Good's series (its large-``n`` branch, most null-window p-values) on
  4-element numpy arrays; here it runs on Python floats with :mod:`math`, the operations in
  scipy's order (its sums in ``numpy.sum``'s order, :mod:`detectors.stats.floatsum`), so the
  results agree to the last bit or within a few ulps;
* scipy's per-value wrappers (``nditer``, ``np.where`` / ``np.clip`` on 0-d arrays) are gone.
  A p-value costs 4-10x less CPU (timeit, n = 500, d = 0.05: 0.34 -> 0.03 ms; n = 2000,
  d = 0.02: 0.17 -> 0.06 ms, on a shared machine), and the KS p-values and critical values were
  half of window evaluation's CPU (``bench/evaluate.py`` on the 2,808 keys of a
  ``bench/ingest.py`` run: prediction_drift 3.8 -> 2.0 ms a key, feature_drift 3.6 -> 2.8);
* ``isf`` is scipy's ``_kolmogni`` -- same bracket, ``brentq`` with the same ``xtol`` -- over
  this ``cdf``, so its ~10 evaluations are as cheap (n = 2000, alpha = 1e-4: 4.7 -> 0.5 ms).

Durbin's matrix as Marsaglia-Tsang-Wang compute it (small statistics, p-values near 1) is
scipy's ``_kolmogn_DMTW`` with its ``n`` scalar steps on Python floats / long doubles
(:func:`_dmtw`: 0.47 -> 0.18 ms a call at n ~ 450, equal to scipy's with ``==``); Pomeranz's
recursion (``n <= 140``) calls scipy's own function and ``scipy.special.smirnov`` serves the
``2 * smirnov`` branches as in scipy (~0.35 ms at n = 450, ~12 ms at n = 9,000: its
double-double sum is the largest cost left). ``tests/test_stats_kolmogorov.py`` compares both
functions with scipy on a grid that enters every branch.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, special
from scipy.special._ufuncs import _kolmogci  # the inverse of the limiting CDF, as _kolmogni
from scipy.stats._ksstats import _E128, _EM128, _EP128, _kolmogn_Pomeranz

from detectors.stats.floatsum import numpy_sum

_PI2, _PI4, _PI6 = math.pi ** 2, math.pi ** 4, math.pi ** 6
_SQRT2PI = math.sqrt(2 * math.pi)
_SQRT3 = math.sqrt(3)
_EM128_F = 2.0 ** -128  # scipy's _EM128 as a float64 (exact)
_MIN_LOG = -708  # exp below this underflows: Pelz-Good's CDF is 0 (z < ~0.0417)
_LOG_2PI = math.log(2 * math.pi)
# B_2j / (2j) / (2j - 1) for j = 8..1 (Stirling's series), highest first as np.polyval takes them
_STIRLING = (-2.955065359477124183e-2, 6.4102564102564102564e-3, -1.9175269175269175269e-3,
             8.4175084175084175084e-4, -5.952380952380952381e-4, 7.9365079365079365079e-4,
             -2.7777777777777777778e-3, 8.3333333333333333333e-2)


def _clip(p: float) -> float:
    return min(max(p, 0.0), 1.0)


def _pelz_good_cdf(n: int, x: float) -> float:
    """scipy's ``_kolmogn_PelzGood(n, x)``: Li-Chien and Korolyuk's expansion
    ``K0(z) + K1(z)/sqrt(n) + K2(z)/n + K3(z)/n**1.5`` (``z = x sqrt(n)``), each term turned by
    Jacobi's theta identity into a series that converges fast for small ``z`` (Pelz & Good
    1976), for ``0 < x < 1``. Every product and sum is scipy's, in its order; only constants
    that do not depend on ``z`` (the odd ``m``'s powers, exact integers) are tabulated."""
    z = math.sqrt(n) * x
    z2, z3, z4, z6 = z ** 2, z ** 3, z ** 4, z ** 6
    qlog = -_PI2 / 8 / z2
    if qlog < _MIN_LOG:
        return 0.0
    q = math.exp(qlog)
    k1a, k1b = -z2, _PI2 / 4
    k2a = 6 * z6 + 2 * z4
    k2b = (2 * z4 - 5 * z2) * _PI2 / 4
    k2c = _PI4 * (1 - 2 * z2) / 16
    k3d = _PI6 * (5 - 30 * z2) / 64
    k3c = _PI4 * (-60 * z2 + 212 * z4) / 16
    k3b = _PI2 * (135 * z4 - 96 * z6) / 4
    k3a = -30 * z6 - 90 * z ** 8
    # Horner's scheme over odd m = 2k - 1 of sum c_m q^(m^2), as scipy does it
    s0 = s1 = s2 = s3 = 0.0
    maxk = int(math.ceil(16 * z / math.pi))
    terms = _ODD_POWERS[maxk - 1::-1] if maxk <= len(_ODD_POWERS) else [
        (8 * k, (2 * k - 1) ** 2, (2 * k - 1) ** 4, (2 * k - 1) ** 6)
        for k in range(maxk, 0, -1)]
    for k8, m2, m4, m6 in terms:
        qp = q ** k8
        s0 = s0 * qp + 1.0
        s1 = s1 * qp + (k1a + k1b * m2)
        s2 = s2 * qp + (k2a + k2b * m2 + k2c * m4)
        s3 = s3 * qp + (k3a + k3b * m2 + k3c * m4 + k3d * m6)
    s0 = s0 * q * _SQRT2PI / z
    s1 = s1 * q * _SQRT2PI / (6 * z4)
    s2 = s2 * q * _SQRT2PI / (72 * z ** 7)
    s3 = s3 * q * _SQRT2PI / (6480 * z ** 10)
    # the sums over all integers k of K2's and K3's extra terms (numpy_sum's order: below 8
    # terms, left to right from 0.0)
    q = math.exp(-_PI2 / 2 / z2)
    sqrt3z = _SQRT3 * z
    if maxk < 8:
        k2extra = k3extra = 0.0
        for k in range(maxk, 0, -1):
            kk = k * k
            qk = q ** kk
            k2extra += kk * qk
            k3extra += (sqrt3z + math.pi * k) * (sqrt3z - math.pi * k) * kk * qk
    else:
        t2, t3 = [], []
        for k in range(maxk, 0, -1):
            kk = k * k
            qk = q ** kk
            t2.append(kk * qk)
            t3.append((sqrt3z + math.pi * k) * (sqrt3z - math.pi * k) * kk * qk)
        k2extra, k3extra = numpy_sum(t2), numpy_sum(t3)
    s2 += k2extra * (_PI2 * _SQRT2PI / (-36 * z3))
    s3 += k3extra * (_PI2 * _SQRT2PI / (216 * z6))
    fn = n * 1.0
    return ((s0 + s1 / fn ** 0.5) + s2 / fn) + s3 / fn ** 1.5


# (8 k, m**2, m**4, m**6) for m = 2 k - 1, k = 1..16 (z up to pi): exact integers
_ODD_POWERS = tuple((8 * k, (2 * k - 1) ** 2, (2 * k - 1) ** 4, (2 * k - 1) ** 6)
                    for k in range(1, 17))


def _log_factorial_over_power(n: int) -> float:
    """``log(n! / n**n)`` by Stirling's series (scipy's ``_log_nfactorial_div_n_pow_n``)."""
    rn = 1.0 / n
    x = rn / n
    poly = 0.0
    for c in _STIRLING:  # Horner, as np.polyval
        poly = poly * x + c
    return math.log(n) / 2 - n + _LOG_2PI / 2 + rn * poly


# scipy's exact algorithms return their CDF in long double (they rescale by 2**128 in it), and
# scipy takes ``1 - cdf`` (and brentq's ``cdf - p``) before rounding to a double: so these stay
# long double until :func:`sf`, :func:`cdf` and :func:`isf` return.
def _dmtw(n: int, x: float) -> float:
    """scipy's ``_kolmogn_DMTW(n, x)`` (Durbin's matrix: the ``k``-th diagonal entry of
    ``H**n`` times ``n!/n**n``), the same operations on the same values, two of them cheaper:
    ``H`` (lower Hessenberg, Toeplitz below its first column and last row) is gathered from
    ``1/j!`` in one indexing rather than ``m`` slice assignments, and the ``n`` factors
    ``i/n`` (scipy: ``p = i * p / n`` on a numpy scalar, ``np.abs`` against ``2**-128`` at
    every step; ~0.4 of its ~0.5 ms) run on a Python float while scipy's ``p`` is a float64,
    then on a long double once its first rescaling by ``2**128`` made it one. Rescalings by
    powers of two are exact in long double (no subnormal: its exponent reaches ``-16382``,
    and 32 factors of at least ``1/n >= 1e-5`` lower ``p`` by less than ``2**-532``), so
    checking every 32 factors rather than every one changes no bit of the result; nor does
    the final ``ldexp``. ``tests/test_stats_kolmogorov.py`` compares it with scipy's ``==``."""
    nd = n * x
    k = int(math.ceil(nd))
    h = k - nd
    m = 2 * k - 1
    v = 1.0 - h ** np.arange(1, m + 1)
    w = [0.0] * (m + 1)  # w[j] = 1/j!, then 1/m! (v's last factor)
    fac = 1.0
    for j in range(1, m + 1):
        w[j - 1] = fac
        fac /= j
    w[m] = fac
    v *= np.array(w[1:])
    tt = max(2 * h - 1.0, 0) ** m - 2 * h ** m
    v[-1] = (1.0 + tt) * fac
    band = np.array([0.0, *w[:m]])  # H[r, c] = w[r - c + 1] for c >= 1 (0 above the band)
    rows = np.arange(m)
    big_h = band[np.clip(rows[:, None] - rows[None, :] + 2, 0, m)]
    big_h[:, 0] = v
    big_h[-1, :] = v[::-1]
    hpwr = np.eye(m)
    nn, expnt, hexpnt = n, 0, 0
    while nn > 0:  # scipy's squarings, unchanged
        if nn % 2:
            hpwr = np.matmul(hpwr, big_h)
            expnt += hexpnt
        big_h = np.matmul(big_h, big_h)
        hexpnt *= 2
        if np.abs(big_h[k - 1, k - 1]) > _EP128:
            big_h /= _EP128
            hexpnt += _E128
        nn = nn // 2
    pf = float(hpwr[k - 1, k - 1])
    i = 1
    while i <= n:  # float64 until the first rescaling
        pf = i * pf / n
        i += 1
        if abs(pf) < _EM128_F:
            break
    else:
        return _clip(np.ldexp(np.float64(pf), expnt) if expnt != 0 else np.float64(pf))
    p, expnt, ln = np.float64(pf) * _EP128, expnt - _E128, np.longdouble(n)
    while i <= n:
        stop = min(i + 32, n + 1)
        for j in range(i, stop):
            p = j * p / ln
        i = stop
        while 0 < abs(p) < _EM128:  # (0 stays 0: scipy rescales it every step)
            p *= _EP128
            expnt -= _E128
    return _clip(np.ldexp(p, expnt) if expnt != 0 else p)  # scipy clips to [0, 1] too


def _pomeranz(n: int, x: float) -> float:
    return _kolmogn_Pomeranz(n, x, cdf=True)


def _two_smirnov(n: int, x: float) -> float:
    return 2 * float(special.smirnov(n, x))


def _kolmogn(n: int, x: float, cdf: bool) -> float:
    """scipy's ``_kolmogn(n, x, cdf)`` for an integer ``n >= 1``: ``P(D_n <= x)`` or
    ``P(D_n > x)``, the branch chosen exactly as scipy chooses it."""
    if x >= 1.0:
        return 1.0 if cdf else 0.0
    if x <= 0.0:
        return 0.0 if cdf else 1.0
    t = n * x
    if t <= 1.0:  # Ruben-Gambino: 1/(2n) <= x <= 1/n
        if t <= 0.5:
            return 0.0 if cdf else 1.0
        if n <= 140:
            step, prob = 2 * t - 1, 1.0
            for i in range(1, n + 1):  # np.prod multiplies left to right
                prob *= i * (1.0 / n) * step
        else:
            prob = math.exp(_log_factorial_over_power(n) + n * math.log(2 * t - 1))
        return _clip(prob if cdf else 1.0 - prob)
    if t >= n - 1:  # Ruben-Gambino
        prob = 2 * (1.0 - x) ** n
        return _clip(1 - prob if cdf else prob)
    if x >= 0.5:  # exact: 2 * smirnov
        prob = _two_smirnov(n, x)
        return _clip(1.0 - prob if cdf else prob)
    nx2 = t * x
    if n <= 140:
        if nx2 <= 0.754693:
            prob = _dmtw(n, x)
        elif nx2 <= 4:
            prob = _pomeranz(n, x)
        else:  # Miller's approximation 2 * smirnov
            prob = _two_smirnov(n, x)
            return _clip(1.0 - prob if cdf else prob)
        return _clip(prob if cdf else 1.0 - prob)
    if not cdf:  # scipy's SF and CDF have different cut-offs on n x^2 here
        if nx2 >= 370.0:
            return 0.0
        if nx2 >= 2.2:
            return _clip(_two_smirnov(n, x))
    if nx2 >= 18.0:
        cdfprob = 1.0
    elif n <= 100000 and n * x ** 1.5 <= 1.4:
        cdfprob = _dmtw(n, x)
    else:
        cdfprob = _pelz_good_cdf(n, x)
    return _clip(cdfprob if cdf else 1.0 - cdfprob)


def sf(d: float, n: int) -> float:
    """``scipy.stats.kstwo.sf(d, n)``: ``P(D_n > d)`` for an integer ``n >= 1``, including the
    distribution's support (1 up to ``1/(2n)``, 0 from 1 on) and NaN for a NaN ``d``."""
    if math.isnan(d):
        return math.nan
    if d <= 0.5 / n:
        return 1.0
    if d >= 1.0:
        return 0.0
    return float(_kolmogn(n, d, cdf=False))


def cdf(d: float, n: int) -> float:
    """``P(D_n <= d)``, scipy's ``_kolmogn(n, d)`` (what :func:`isf` inverts)."""
    return float(_kolmogn(n, d, cdf=True))


def isf(alpha: float, n: int) -> float:
    """``scipy.stats.kstwo.isf(alpha, n)`` for ``0 < alpha < 1`` and an integer ``n >= 1``:
    scipy's ``_kolmogni`` (closed forms near both ends of the support, else a root of
    ``cdf(d) = 1 - alpha`` by ``brentq`` between ``1/n`` and the limiting distribution's
    quantile, ``xtol=1e-14``)."""
    p, q = 1 - alpha, alpha
    if p <= 0:
        return 1.0 / n
    if q <= 0:
        return 1.0
    delta = math.exp((math.log(p) - float(special.loggamma(n + 1))) / n)
    if delta <= 1.0 / n:
        return (delta + 1.0 / n) / 2
    x = -math.expm1(math.log(q / 2.0) / n)
    if x >= 1 - 1.0 / n:
        return x
    x1 = min(float(_kolmogci(p)) / math.sqrt(n), 1.0 - 1.0 / n)
    return optimize.brentq(lambda d: float(_kolmogn(n, d, cdf=True) - p), 1.0 / n, x1, xtol=1e-14)
