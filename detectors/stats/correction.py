"""Multiple-testing correction: Bonferroni (family-wise error) and Benjamini-Hochberg (false
discovery rate).

Both accept ``m`` larger than the number of p-values given: a detector that tests ``k`` features
in each of ``s`` slices corrects over its ``k`` features and multiplies by ``s`` (Bonferroni across
slices), because the other slices' p-values are not available when one slice is evaluated.
Under the global null (nothing drifted) Benjamini-Hochberg rejects anything with probability at
most ``alpha``, so both methods bound the stationary false-alarm rate of a detector by ``alpha``.
"""

from __future__ import annotations

import numpy as np

METHODS = ("bonferroni", "bh")


def bonferroni(p: np.ndarray, m: int | None = None) -> np.ndarray:
    """Adjusted p-values ``min(1, m * p)``.

    >>> bonferroni(np.array([0.01, 0.2]))
    array([0.02, 0.4 ])
    """
    p = np.asarray(p, np.float64)
    m = p.size if m is None else m
    return np.minimum(1.0, p * m)


def benjamini_hochberg(p: np.ndarray, m: int | None = None) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (step-up; ``scipy.stats.false_discovery_control``).

    ``p_adj[(i)] = min_{j >= i} m * p[(j)] / j`` over the sorted p-values, capped at 1.

    >>> benjamini_hochberg(np.array([0.01, 0.04, 0.03]))
    array([0.03, 0.04, 0.04])
    """
    p = np.asarray(p, np.float64)
    m = p.size if m is None else m
    if p.size == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, p.size + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty_like(p)
    out[order] = np.minimum(1.0, adjusted)
    return out


def adjust(p: np.ndarray, method: str, m: int | None = None) -> np.ndarray:
    """Adjusted p-values by ``method`` (``"bonferroni"`` or ``"bh"``)."""
    if method == "bonferroni":
        return bonferroni(p, m)
    if method == "bh":
        return benjamini_hochberg(p, m)
    raise ValueError(f"unknown correction {method!r}; expected one of {METHODS}")


def critical_p(p: np.ndarray, alpha: float, method: str, m: int | None = None) -> float:
    """The raw p-value at or under which a test is rejected, given all p-values of the family.

    Bonferroni: ``alpha / m``. Benjamini-Hochberg: ``k * alpha / m`` for the largest ``k`` with
    ``p_(k) <= k * alpha / m`` (``alpha / m`` when nothing is rejected: the bar the first
    rejection would have to clear). Used to report each test's threshold on its own scale.
    """
    p = np.asarray(p, np.float64)
    m = p.size if m is None else m
    if m == 0:
        return alpha
    if method == "bonferroni" or p.size == 0:
        return alpha / m
    ranked = np.sort(p)
    ok = np.flatnonzero(ranked <= np.arange(1, p.size + 1) * alpha / m)
    return (int(ok[-1]) + 1) * alpha / m if ok.size else alpha / m
