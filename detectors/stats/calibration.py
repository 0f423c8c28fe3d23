"""Confidence calibration for confidence-based performance estimation (CBPE).

A window's accuracy is estimated before its labels arrive as the expected accuracy of its
predictions given their confidence: ``sum_b n_b * acc_b / sum_b n_b`` over confidence bins ``b``,
where ``acc_b`` is the accuracy the model actually had at that confidence on labelled reference
data (NannyML's CBPE with the calibration learnt on the reference). The map is monotone
(isotonic regression by pool-adjacent-violators), so a sparse bin cannot make more confident
predictions look less accurate.

Confidence is sketched on a fixed grid of :data:`GRID` equal bins over [0, 1]; calibration bin
edges are multiples of ``1 / GRID``, so a window's grid counts fold into calibration bins exactly.
"""

from __future__ import annotations

import numpy as np

GRID = 100  # fine confidence bins per window state: 100 int64 counts, 1 % resolution


def grid_counts(confidence: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
    """Counts of (finite) confidences on the fixed grid.

    >>> grid_counts(np.array([0.0, 0.005, 0.5, 1.0, np.nan]))[[0, 50, 99]].tolist()
    [2, 1, 1]
    """
    c = np.asarray(confidence, np.float64)
    ok = np.isfinite(c)
    idx = np.clip((c[ok] * GRID).astype(np.int64), 0, GRID - 1)
    w = None if weight is None else np.asarray(weight, np.float64)[ok]
    return np.bincount(idx, weights=w, minlength=GRID).round().astype(np.int64)


def isotonic(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted non-decreasing least-squares fit (pool adjacent violators).

    >>> isotonic(np.array([0.5, 0.9, 0.7, 1.0]), np.array([1.0, 1.0, 1.0, 1.0])).tolist()
    [0.5, 0.8, 0.8, 1.0]
    """
    values, weights, sizes = [], [], []
    for yi, wi in zip(np.asarray(y, float), np.asarray(w, float)):
        values.append(yi)
        weights.append(wi)
        sizes.append(1)
        while len(values) > 1 and values[-2] > values[-1]:
            wsum = weights[-2] + weights[-1]
            merged = (values[-2] * weights[-2] + values[-1] * weights[-1]) / wsum if wsum else 0.0
            values[-2:], weights[-2:], sizes[-2:] = [merged], [wsum], [sizes[-2] + sizes[-1]]
    return np.repeat(values, sizes)


def fit(confidence: np.ndarray, correct: np.ndarray, prior: float = 5.0) -> dict[str, np.ndarray]:
    """Learn the calibration map from labelled reference predictions.

    One bin per grid step. Each bin's accuracy is the reference's, shrunk towards the bin's own
    confidence with ``prior`` pseudo-counts -- so where the reference has thousands of
    predictions its accuracy rules, and where it has few (confidences a shifted window reaches
    but the reference rarely did) the model's own probability is the best guess left -- then
    made monotone. Returns ``edges`` (float64, ``GRID + 1``), ``accuracy`` and ``n`` (float64,
    ``GRID``).

    An over-confident model (right 80 % of the time at confidence 0.95) is corrected where the
    reference saw it, and left alone where it did not:

    >>> rng = np.random.default_rng(0)
    >>> conf = rng.uniform(0.9, 1.0, 5000)
    >>> m = fit(conf, rng.random(5000) < 0.8)
    >>> m["accuracy"][[95, 50]].round(2).tolist()
    [0.8, 0.5]
    """
    counts = grid_counts(confidence)
    right = grid_counts(confidence, np.asarray(correct, np.float64))
    middle = (np.arange(GRID) + 0.5) / GRID
    acc = (right + prior * middle) / (counts + prior)
    return {"edges": np.arange(GRID + 1) / GRID, "accuracy": isotonic(acc, counts + prior),
            "n": counts.astype(np.float64)}


def estimate(grid: np.ndarray, edges: np.ndarray, accuracy: np.ndarray) -> float:
    """Expected accuracy of predictions with grid counts ``grid`` under the calibration map.

    >>> g = np.zeros(GRID, np.int64); g[[20, 90]] = [1, 3]
    >>> estimate(g, np.array([0.0, 0.5, 1.0]), np.array([0.4, 0.9]))
    0.775
    """
    total = grid.sum()
    if total == 0:
        return float("nan")
    bounds = np.round(np.asarray(edges) * GRID).astype(np.int64)
    per_bin = np.add.reduceat(grid, bounds[:-1])
    return float((per_bin * accuracy).sum() / total)


def estimate_se(grid: np.ndarray, edges: np.ndarray, accuracy: np.ndarray) -> float:
    """Standard error of the realised accuracy around the estimate (Poisson-binomial variance
    of independent predictions): how far realised accuracy may honestly sit from the estimate."""
    total = grid.sum()
    if total == 0:
        return float("nan")
    bounds = np.round(np.asarray(edges) * GRID).astype(np.int64)
    per_bin = np.add.reduceat(grid, bounds[:-1])
    return float(np.sqrt((per_bin * accuracy * (1 - accuracy)).sum()) / total)
