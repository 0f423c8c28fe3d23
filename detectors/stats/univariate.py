"""Univariate two-sample statistics on histogram counts (and exact KS on raw samples).

Tests return ``(statistic, p_value)``; effect sizes (PSI, Wasserstein-1, Jensen-Shannon) return a
float. Count arguments are aligned arrays over the same bins: reference first, window second.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import special, stats

from detectors.stats import kolmogorov

PSI_EPS = 1e-4  # proportions are floored here before the log, as Evidently and most tools do


EXACT_KS_MAX_N = 10_000  # above this effective size scipy's kstwo costs ~10 ms per p-value


def _en(n: int, m: int) -> float:
    big, small = max(n, m), min(n, m)
    return float(round(big * small / (big + small)))  # half to even, as np.round


def _kstwo_sf(d: np.ndarray, en: float) -> np.ndarray:
    """``scipy.stats.kstwo.sf(d, en)`` elementwise, by :func:`kolmogorov.sf` (scipy's algorithm
    without its per-value numpy bookkeeping; equal bit for bit on a test's grid): NaN for NaN
    or a non-integer ``en < 1``."""
    d = np.asarray(d, np.float64)
    if not (en >= 1 and en == round(en)):
        return np.full(d.shape, math.nan)
    n = int(en)
    return np.array([kolmogorov.sf(x, n) for x in d.ravel().tolist()]).reshape(d.shape)


def ks_pvalue(d: float, n: int, m: int) -> float:
    """Two-sided asymptotic p-value of the two-sample KS statistic ``d``.

    Up to an effective sample size ``n*m/(n+m)`` of 10,000 this is exactly
    ``scipy.stats.ks_2samp(method="asymp")``: the one-sample Kolmogorov distribution at the
    effective size. Beyond, that distribution costs ~10 ms per call, so the limiting Kolmogorov
    distribution with Stephens' (1970) small-sample correction ``sqrt(en) + 0.12 + 0.11/sqrt(en)``
    is used instead: within 1 % of it, relative, for p-values down to 1e-8. Conservative under
    ties (discrete data, coarse bins), which only lowers the false-alarm rate.
    """
    if n == 0 or m == 0:
        return math.nan
    en = _en(n, m)
    if 1 <= en <= EXACT_KS_MAX_N:  # ks_pvalues' exact branch on one value, without arrays
        return min(max(kolmogorov.sf(float(d), int(en)), 0.0), 1.0)
    return float(ks_pvalues(np.float64(d), n, m))


def ks_pvalues(d: np.ndarray, n: int, m: int) -> np.ndarray:
    """:func:`ks_pvalue` of several statistics with the same sizes, in one call."""
    d = np.asarray(d, np.float64)
    if n == 0 or m == 0:
        return np.full(d.shape, math.nan)
    en = _en(n, m)
    if en <= EXACT_KS_MAX_N:
        return np.clip(_kstwo_sf(d, en), 0.0, 1.0)
    root = math.sqrt(en)
    return np.clip(stats.kstwobign.sf(d * (root + 0.12 + 0.11 / root)), 0.0, 1.0)


def ks_critical(alpha: float, n: int, m: int) -> float:
    """The KS statistic at which :func:`ks_pvalue` equals ``alpha`` (the decision threshold)."""
    return _ks_critical(alpha, _en(n, m))


@functools.lru_cache(maxsize=4096)  # the exact inverse is a root search (~0.5 ms)
def _ks_critical(alpha: float, en: float) -> float:
    """Memoised on the effective size (many ``(n, m)`` share one): ``kstwo.isf(alpha, en)``,
    for ``0 < alpha < 1`` by :func:`kolmogorov.isf` (scipy's root search over the faster CDF;
    equal bit for bit on a test's grid)."""
    if en <= EXACT_KS_MAX_N:
        if 0 < alpha < 1 and en >= 1:
            return kolmogorov.isf(alpha, int(en))
        return float(stats.kstwo.isf(alpha, en))
    root = math.sqrt(en)
    return float(stats.kstwobign.isf(alpha) / (root + 0.12 + 0.11 / root))


def ks_counts(ref: np.ndarray, win: np.ndarray) -> tuple[float, float]:
    """KS test between two histograms over the same ordered bins.

    The statistic is the largest CDF gap at a bin edge: equal to the exact KS statistic when each
    bin holds a single distinct value, otherwise at most one bin's mass below it.
    """
    n, m = int(ref.sum()), int(win.sum())
    if n == 0 or m == 0:
        return math.nan, math.nan
    d = float(np.abs(ref.cumsum() / n - win.cumsum() / m).max())
    return d, ks_pvalue(d, n, m)


def ks_samples(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Exact two-sample KS statistic on raw samples, asymptotic p-value."""
    x, y = np.sort(np.asarray(x, np.float64)), np.sort(np.asarray(y, np.float64))
    if x.size == 0 or y.size == 0:
        return math.nan, math.nan
    z = np.concatenate([x, y])
    gap = np.searchsorted(x, z, side="right") / x.size - np.searchsorted(y, z, side="right") / y.size
    d = float(np.max(np.abs(gap)))
    return d, ks_pvalue(d, x.size, y.size)


def chi2_homogeneity(ref: np.ndarray, win: np.ndarray) -> tuple[float, float, int]:
    """Pearson chi-square test that two count vectors come from one distribution.

    A 2 x k contingency test: both sides are samples, so a finite reference does not inflate the
    false-alarm rate the way a goodness-of-fit test against reference frequencies would. Bins
    empty on both sides are dropped. Returns ``(statistic, p_value, dof)``.
    """
    ref, win = np.asarray(ref, np.float64), np.asarray(win, np.float64)
    keep = (ref + win) > 0
    ref, win = ref[keep], win[keep]
    n, m = ref.sum(), win.sum()
    if n == 0 or m == 0 or ref.size < 2:
        return 0.0, 1.0, 0
    col = ref + win
    e_ref, e_win = col * n / (n + m), col * m / (n + m)
    stat = float(np.sum((ref - e_ref) ** 2 / e_ref) + np.sum((win - e_win) ** 2 / e_win))
    dof = ref.size - 1
    # special.chdtrc is what stats.chi2.sf computes, without its ~0.1 ms of argument handling
    return stat, float(special.chdtrc(dof, stat)), dof


def chi2_gof(observed: np.ndarray, expected_freq: np.ndarray) -> tuple[float, float]:
    """Goodness-of-fit chi-square of counts against known frequencies (``scipy.stats.chisquare``).

    Only right when the frequencies are known exactly (not estimated from a finite reference).
    """
    observed = np.asarray(observed, np.float64)
    expected = np.asarray(expected_freq, np.float64)
    expected = expected / expected.sum() * observed.sum()
    stat = float(np.sum((observed - expected) ** 2 / expected))
    return stat, float(stats.chi2.sf(stat, observed.size - 1))


MIN_EXPECTED = 20.0  # per bin, in the smaller sample (see pool_sparse)


def pool_sparse(ref: np.ndarray, win: np.ndarray, min_expected: float = MIN_EXPECTED,
                ordered: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Merge bins until every bin's expected count is at least ``min_expected`` in BOTH samples.

    The chi-square approximation is anti-conservative with small expected counts, and the
    sample that matters is the smaller one: a 200-event slice reference against 5,000 window
    events has tiny expected reference counts in bins the window fills well, so pooling by the
    window's counts alone (as this did before) rejected 3-5x too often at alpha/17..alpha/85.
    Expected counts of the smaller sample (``(ref + win) * min(n, m) / (n + m)``) decide, and
    20 rather than the textbook 5 because the tail matters here: the Bonferroni-corrected levels
    are 1e-3..1e-4, where Pearson's statistic with expected counts of 5 still rejects about
    twice as often as nominal (Monte Carlo in ``bench/calibration.py``; 20 gives 1.0-1.1x).

    Ordered bins are merged with their right neighbour (a remainder with the last bin);
    unordered bins (categories) are taken from the most to the least frequent, so the frequent
    ones keep their own bin and the rare ones are pooled together.

    >>> pool_sparse(np.array([100, 2, 1, 50, 1]), np.array([100, 1, 0, 50, 2]), 5)
    (array([100,  54]), array([100,  53]))
    """
    ref, win = np.asarray(ref, np.int64), np.asarray(win, np.int64)
    n, m = ref.sum(), win.sum()
    if n == 0 or m == 0:
        return ref, win
    share = min(n, m) / (n + m)
    order = (np.arange(ref.size) if ordered
             else np.argsort(-(ref + win), kind="stable"))
    out_r, out_w, acc_r, acc_w = [], [], 0, 0
    for i in order:
        acc_r, acc_w = acc_r + int(ref[i]), acc_w + int(win[i])
        if (acc_r + acc_w) * share >= min_expected:
            out_r.append(acc_r)
            out_w.append(acc_w)
            acc_r = acc_w = 0
    if acc_r + acc_w:
        if out_r:
            out_r[-1] += acc_r
            out_w[-1] += acc_w
        else:
            out_r, out_w = [acc_r], [acc_w]
    return np.asarray(out_r, np.int64), np.asarray(out_w, np.int64)


def chi2_pooled_rows(ref: np.ndarray, win: np.ndarray, min_expected: float = MIN_EXPECTED,
                     ordered: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``chi2_homogeneity(*pool_sparse(ref[i], win[i]))`` for every row ``i`` at once:
    ``(statistic, p_value)`` arrays. The same greedy pooling, run across rows bin by bin (for the
    Monte Carlo in ``bench/calibration.py``; a test checks it equals the one-row functions).
    """
    ref, win = np.asarray(ref, np.float64), np.asarray(win, np.float64)
    if not ordered:
        order = np.argsort(-(ref + win), axis=1, kind="stable")
        ref, win = np.take_along_axis(ref, order, 1), np.take_along_axis(win, order, 1)
    n, m = ref.sum(1), win.sum(1)
    total = np.where(n + m > 0, n + m, 1.0)
    share, fr, fw = np.minimum(n, m) / total, n / total, m / total
    rows = ref.shape[0]
    stat, bins = np.zeros(rows), np.zeros(rows, np.int64)
    last_r, last_w = np.zeros(rows), np.zeros(rows)
    acc_r, acc_w = np.zeros(rows), np.zeros(rows)

    def term(r: np.ndarray, w: np.ndarray) -> np.ndarray:
        col = r + w
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (r - col * fr) ** 2 / (col * fr) + (w - col * fw) ** 2 / (col * fw)
        return np.where(col > 0, t, 0.0)

    for j in range(ref.shape[1]):
        acc_r, acc_w = acc_r + ref[:, j], acc_w + win[:, j]
        emit = (acc_r + acc_w) * share >= min_expected
        stat = np.where(emit, stat + term(acc_r, acc_w), stat)
        bins += emit
        last_r, last_w = np.where(emit, acc_r, last_r), np.where(emit, acc_w, last_w)
        acc_r, acc_w = np.where(emit, 0.0, acc_r), np.where(emit, 0.0, acc_w)
    rest = (acc_r + acc_w) > 0
    merged = rest & (bins > 0)
    stat = np.where(merged, stat - term(last_r, last_w) + term(last_r + acc_r, last_w + acc_w),
                    stat)
    bins = np.where(rest & (bins == 0), 1, bins)
    dof = bins - 1
    ok = (dof > 0) & (n > 0) & (m > 0)
    p = np.where(ok, stats.chi2.sf(stat, np.maximum(dof, 1)), 1.0)
    return np.where(ok, stat, 0.0), p


def _proportions(c: np.ndarray) -> np.ndarray:
    c = np.asarray(c, np.float64)
    total = c.sum()
    return c / total if total > 0 else np.full(c.shape, math.nan)


def psi(ref: np.ndarray, win: np.ndarray, eps: float = PSI_EPS) -> float:
    """Population stability index ``sum (w - r) ln(w / r)`` over bins (proportions floored at
    ``eps``). Rule of thumb: < 0.1 stable, 0.1-0.25 moderate, > 0.25 major shift."""
    r, w = np.maximum(_proportions(ref), eps), np.maximum(_proportions(win), eps)
    return float(((w - r) * np.log(w / r)).sum())


def js_distance(ref: np.ndarray, win: np.ndarray) -> float:
    """Jensen-Shannon distance (square root of the divergence, base 2, in [0, 1]), like
    ``scipy.spatial.distance.jensenshannon(p, q, base=2)``."""
    p, q = _proportions(ref), _proportions(win)
    mid = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        nz = a > 0  # 0 * log 0 = 0
        an = a[nz]
        return float((an * np.log(an / mid[nz])).sum())

    div = 0.5 * (kl(p) + kl(q)) / math.log(2)
    return math.sqrt(max(div, 0.0))


def wasserstein_counts(edges: np.ndarray, ref: np.ndarray, win: np.ndarray) -> float:
    """Wasserstein-1 (earth mover's) distance between two histograms on ``edges``.

    Each bin's mass sits at its left edge, so W1 is ``sum |F - G| * width`` over all but the last
    bin: exact when every value equals its bin's left edge (integer data on integer edges), within
    one bin width otherwise.
    """
    n, m = ref.sum(), win.sum()
    if n == 0 or m == 0:
        return math.nan
    gap = np.abs(ref.cumsum() / n - win.cumsum() / m)[:-1]
    edges = np.asarray(edges)
    return float((gap * (edges[1:-1] - edges[:-2])).sum())  # np.diff(edges)[:-1]
