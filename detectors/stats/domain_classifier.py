"""Domain-classifier two-sample test: can a classifier tell window inputs from reference inputs?

A logistic regression is fitted to separate window (label 1) from reference (label 0) rows under
stratified k-fold cross-validation, so every row is scored by a model that never saw it. The AUC
of those out-of-fold scores is the Mann-Whitney U statistic divided by ``n1 * n0``; under
``H0: same distribution`` the labels are exchangeable and AUC is about 0.5. Its p-value is
one-sided (AUC > 0.5) from the tie-corrected normal approximation of U, or from a permutation of
the labels over the fixed scores. Cross-validated AUC is slightly pessimistic under H0, so the
test errs on the conservative side.

The explanation is the point (Rabanser et al. 2019 use it to characterise a shift): the window
rows with the highest out-of-fold score are the most "new" inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True, slots=True)
class DomainClassifierResult:
    auc: float
    p_value: float
    window_scores: np.ndarray  # out-of-fold P(window | x) of each window row, in input order


def auc_test(pos: np.ndarray, neg: np.ndarray) -> tuple[float, float]:
    """AUC of scores ``pos`` (should be higher) vs ``neg`` and its one-sided p-value.

    The normal approximation of the Mann-Whitney U with the tie correction and no continuity
    correction (``scipy.stats.mannwhitneyu(pos, neg, alternative="greater",
    method="asymptotic", use_continuity=False)``).

    >>> auc_test(np.array([3.0, 4.0]), np.array([1.0, 2.0]))[0]
    1.0
    """
    n1, n0 = pos.size, neg.size
    ranks = stats.rankdata(np.concatenate([pos, neg]))
    u = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2)
    n = n1 + n0
    _, tie_counts = np.unique(ranks, return_counts=True)
    tie_term = float(np.sum(tie_counts**3 - tie_counts)) / (n * (n - 1))
    sd = math.sqrt(n1 * n0 / 12.0 * ((n + 1) - tie_term))
    p = float(stats.norm.sf((u - n1 * n0 / 2.0) / sd)) if sd > 0 else 1.0
    return u / (n1 * n0), p


def auc_permutation_pvalue(scores: np.ndarray, labels: np.ndarray, n_permutations: int,
                           seed: int) -> float:
    """One-sided permutation p-value of the AUC of ``scores`` for 0/1 ``labels``."""
    rng = np.random.default_rng(seed)
    ranks = stats.rankdata(scores)
    n1 = int(labels.sum())
    observed = ranks[labels == 1].sum()
    perms = np.argsort(rng.random((n_permutations, scores.size)), axis=1)[:, :n1]
    null = ranks[perms].sum(1)  # rank sums of random "window" sets: same AUC ordering
    return (1.0 + float(np.sum(null >= observed))) / (1.0 + n_permutations)


def domain_classifier_test(x_ref: np.ndarray, x_win: np.ndarray, n_folds: int = 5,
                           seed: int = 0, c: float = 1.0, method: str = "normal",
                           n_permutations: int = 200) -> DomainClassifierResult:
    """Cross-validated logistic-regression domain classifier.

    Parameters
    ----------
    x_ref, x_win
        Reference [n0, d] and window [n1, d] rows (use a reduced representation, e.g. PCA).
    n_folds
        Stratified folds (capped by the smaller class size, at least 2).
    seed
        Seeds the fold split and, for ``method="permutation"``, the label permutations.
    c
        Inverse L2 regularisation of the logistic regression.
    method
        ``"normal"`` (Mann-Whitney normal approximation) or ``"permutation"``.
    """
    # sklearn is imported here: only this optional explanatory test needs it.
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.concatenate([x_ref, x_win]).astype(np.float64)
    y = np.concatenate([np.zeros(len(x_ref), np.int64), np.ones(len(x_win), np.int64)])
    folds = max(2, min(n_folds, len(x_ref), len(x_win)))
    scores = np.empty(len(x))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(x, y):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=500))
        model.fit(x[train], y[train])
        scores[test] = model.predict_proba(x[test])[:, 1]
    auc, p = auc_test(scores[y == 1], scores[y == 0])
    if method == "permutation":
        p = auc_permutation_pvalue(scores, y, n_permutations, seed)
    elif method != "normal":
        raise ValueError(f"unknown method {method!r}; expected 'normal' or 'permutation'")
    return DomainClassifierResult(auc, p, scores[y == 1])
