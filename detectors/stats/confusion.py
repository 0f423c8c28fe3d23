"""Sparse, additive confusion counts and the classification metrics derived from them.

A confusion table is an int64 array of shape ``[M, 3]``: rows ``(label, pred, count)``, sorted by
``(label, pred)``, without zero counts. Sparse because a 1,000-class model would need 8 MB per
dense matrix per slice and window, while one window only ever sees a few thousand distinct
pairs. Signed weights make a replaced label a retraction (-1) plus an addition (+1), and dropping
zero rows keeps the representation canonical, so merging in any order gives equal tables.

Metric definitions follow scikit-learn: macro averages run over the union of classes seen as
labels or predictions; a precision or recall of an empty denominator is 0 (``zero_division=0``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

_SHIFT = np.int64(1 << 31)


def empty_table() -> np.ndarray:
    return np.zeros((0, 3), np.int64)


def _compact(label: np.ndarray, pred: np.ndarray, count: np.ndarray) -> np.ndarray:
    code = label.astype(np.int64) * _SHIFT + pred.astype(np.int64)
    uniq, inverse = np.unique(code, return_inverse=True)
    total = np.bincount(inverse, weights=count, minlength=len(uniq)).round().astype(np.int64)
    keep = total != 0
    uniq = uniq[keep]
    return np.stack([uniq // _SHIFT, uniq % _SHIFT, total[keep]], axis=1).astype(np.int64)


def add(table: np.ndarray, label: np.ndarray, pred: np.ndarray,
        weight: np.ndarray | None = None) -> np.ndarray:
    """``table`` plus one (label, pred) pair per row, each counted ``weight`` times (default 1).

    >>> add(empty_table(), np.array([1, 1, 0]), np.array([1, 0, 0])).tolist()
    [[0, 0, 1], [1, 0, 1], [1, 1, 1]]
    """
    weight = np.ones(len(label), np.int64) if weight is None else np.asarray(weight, np.int64)
    return _compact(np.concatenate([table[:, 0], np.asarray(label, np.int64)]),
                    np.concatenate([table[:, 1], np.asarray(pred, np.int64)]),
                    np.concatenate([table[:, 2], weight]))


def merge(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The table of both (associative, commutative)."""
    both = np.concatenate([a, b])
    return _compact(both[:, 0], both[:, 1], both[:, 2])


def dense(table: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    """The ``[C, C]`` matrix (rows labels, columns predictions)."""
    c = n_classes if n_classes is not None else (int(table[:, :2].max()) + 1 if len(table) else 0)
    m = np.zeros((c, c), np.int64)
    np.add.at(m, (table[:, 0], table[:, 1]), table[:, 2])
    return m


class Metrics(NamedTuple):
    n: int  # labelled predictions
    correct: int
    macro_precision: float
    macro_recall: float
    macro_f1: float
    classes: np.ndarray  # int64: classes in the macro average (seen as label or prediction)
    support: np.ndarray  # int64: labelled rows per class in ``classes``
    recall: np.ndarray  # float64 per class in ``classes`` (0 where the class has no support)
    precision: np.ndarray  # float64 per class in ``classes``


def metrics(table: np.ndarray) -> Metrics:
    """Accuracy counts and macro precision/recall/F1 as scikit-learn computes them.

    >>> t = add(empty_table(), np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0]))
    >>> m = metrics(t)
    >>> m.correct, round(m.macro_precision, 4), round(m.macro_recall, 4), round(m.macro_f1, 4)
    (3, 0.3889, 0.5, 0.4333)
    """
    m = dense(table)
    if m.size == 0:
        z = np.zeros(0)
        return Metrics(0, 0, float("nan"), float("nan"), float("nan"), z.astype(np.int64),
                       z.astype(np.int64), z, z)
    tp = np.diag(m).astype(np.float64)
    support, predicted = m.sum(axis=1), m.sum(axis=0)
    present = np.flatnonzero((support > 0) | (predicted > 0))
    tp, support, predicted = tp[present], support[present], predicted[present]
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(support > 0, tp / np.maximum(support, 1), 0.0)
        precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall /
                      np.where(precision + recall > 0, precision + recall, 1), 0.0)
    return Metrics(int(m.sum()), int(tp.sum()), float(precision.mean()), float(recall.mean()),
                   float(f1.mean()), present.astype(np.int64), support.astype(np.int64),
                   recall, precision)


class Binary(NamedTuple):
    """One-vs-rest counts for one class of interest ("positive" = that class)."""

    n: int
    selected: int  # predicted positive
    positives: int  # labelled positive
    tp: int
    fp: int
    correct: int  # multi-class accuracy numerator (pred == label)


def one_vs_rest(table: np.ndarray, positive: int) -> Binary:
    """Counts for selection rate, TPR and FPR of class ``positive``.

    >>> t = add(empty_table(), np.array([1, 1, 0, 0, 2]), np.array([1, 0, 1, 0, 1]))
    >>> one_vs_rest(t, 1)
    Binary(n=5, selected=3, positives=2, tp=1, fp=2, correct=2)
    """
    label, pred, count = table[:, 0], table[:, 1], table[:, 2]
    sel, pos = pred == positive, label == positive
    return Binary(int(count.sum()), int(count[sel].sum()), int(count[pos].sum()),
                  int(count[sel & pos].sum()), int(count[sel & ~pos].sum()),
                  int(count[label == pred].sum()))
