"""Intervals and tests for proportions: Wilson, Newcombe, Katz, two-proportion z and Fisher.

Vectorised: every function takes counts as scalars or numpy arrays and broadcasts. Undefined
results (a proportion of nothing) are NaN, never an exception, so one empty group cannot stop a
table of groups from being computed.

References: Wilson (1927); Newcombe (1998), "Interval estimation for the difference between
independent proportions", method 10 (hybrid score); Katz et al. (1978) for the log risk ratio.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def z_for(confidence: float) -> float:
    """Two-sided normal quantile for a confidence level (0.95 -> 1.96)."""
    return float(stats.norm.ppf(0.5 + confidence / 2.0))


def _ratio(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, x / np.where(n > 0, n, 1), np.nan)


def wilson(x, n, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for ``x`` successes out of ``n``.

    >>> lo, hi = wilson(8, 10)
    >>> round(float(lo), 4), round(float(hi), 4)
    (0.4902, 0.9433)
    """
    x, n = np.asarray(x, np.float64), np.asarray(n, np.float64)
    z = z_for(confidence)
    p = _ratio(x, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = 1.0 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z / denom * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def newcombe(x1, n1, x2, n2, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Newcombe's hybrid score interval for ``x1/n1 - x2/n2`` (from the two Wilson intervals).

    >>> lo, hi = newcombe(56, 70, 48, 80)
    >>> round(float(lo), 4), round(float(hi), 4)
    (0.0524, 0.3339)
    """
    p1, p2 = _ratio(np.asarray(x1, float), np.asarray(n1, float)), _ratio(np.asarray(x2, float),
                                                                          np.asarray(n2, float))
    l1, u1 = wilson(x1, n1, confidence)
    l2, u2 = wilson(x2, n2, confidence)
    d = p1 - p2
    return d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def katz_ratio(x1, n1, x2, n2, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Katz log interval for the ratio ``(x1/n1) / (x2/n2)``.

    With a zero count, 0.5 is added to every count of that comparison (Haldane-Anscombe), so the
    interval stays finite and conservative.

    >>> lo, hi = katz_ratio(30, 100, 45, 100)
    >>> round(float(lo), 3), round(float(hi), 3)
    (0.461, 0.965)
    """
    x1, n1, x2, n2 = (np.asarray(v, np.float64) for v in (x1, n1, x2, n2))
    zero = (x1 == 0) | (x2 == 0)
    x1, x2 = np.where(zero, x1 + 0.5, x1), np.where(zero, x2 + 0.5, x2)
    n1, n2 = np.where(zero, n1 + 1.0, n1), np.where(zero, n2 + 1.0, n2)
    z = z_for(confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_r = np.log(x1 / n1) - np.log(x2 / n2)
        se = np.sqrt(1 / x1 - 1 / n1 + 1 / x2 - 1 / n2)
    valid = (n1 > 0) & (n2 > 0)
    lo, hi = np.exp(log_r - z * se), np.exp(log_r + z * se)
    return np.where(valid, lo, np.nan), np.where(valid, hi, np.nan)


def two_proportion_p(x1, n1, x2, n2, alternative: str = "two-sided") -> np.ndarray:
    """p-value of the pooled two-proportion z-test of ``p1 == p2``.

    ``alternative="less"`` tests ``p1 < p2`` (a regression of the window against the reference).

    >>> round(float(two_proportion_p(80, 100, 90, 100)), 4)
    0.0477
    >>> round(float(two_proportion_p(80, 100, 90, 100, "less")), 4)
    0.0238
    """
    x1, n1, x2, n2 = (np.asarray(v, np.float64) for v in (x1, n1, x2, n2))
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (x1 + x2) / (n1 + n2)
        se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        z = (x1 / n1 - x2 / n2) / se
    # Identical all-or-nothing proportions have se == 0: no evidence of a difference.
    z = np.where(se > 0, z, 0.0)
    if alternative == "less":
        p = stats.norm.cdf(z)
    elif alternative == "greater":
        p = stats.norm.sf(z)
    else:
        p = 2 * stats.norm.sf(np.abs(z))
    return np.where((n1 > 0) & (n2 > 0), p, np.nan)


def fisher_p(x1, n1, x2, n2, alternative: str = "two-sided") -> np.ndarray:
    """p-value of Fisher's exact test of ``p1 == p2`` (``"less"``: ``p1 < p2``).

    Exact at any sample size: the z-test's normal approximation is anti-conservative when a
    group has few successes (a class predicted 2 times in 94), which per-window fairness tests
    meet all the time. Loops in Python: audits compare tens of rates, not millions.

    >>> round(float(fisher_p(9, 42, 2, 94)), 5), round(float(two_proportion_p(9, 42, 2, 94)), 5)
    (0.00043, 0.00014)
    """
    x1, n1, x2, n2 = np.broadcast_arrays(*(np.asarray(v, np.int64) for v in (x1, n1, x2, n2)))
    out = np.full(x1.shape, np.nan)
    for i in np.ndindex(x1.shape):
        if n1[i] > 0 and n2[i] > 0:
            table = [[x1[i], n1[i] - x1[i]], [x2[i], n2[i] - x2[i]]]
            out[i] = stats.fisher_exact(table, alternative=alternative).pvalue
    return out
