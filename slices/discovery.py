"""Worst-slice discovery: which combinations of attribute values (up to three) have an error rate
significantly above the overall one, with enough support. Pure and vectorised.

Search (level-wise, as Apriori and SliceLine do):

1. Level k counts every value combination of every k-subset of the attributes in one pass: rows
   get a joint integer code, ``np.unique``/``bincount`` gives support and errors per combination.
2. Pruning: support only shrinks as conditions are added, so a combination can reach
   ``min_support`` only if each of its values does. Rows carrying an infrequent value of an
   attribute are dropped before counting the combinations that contain that attribute, and a
   k-subset of attributes is skipped when one of its (k-1)-subsets had no frequent combination.
3. Each frequent combination is tested against the rest of the rows (one-sided pooled
   two-proportion z-test); p-values are Benjamini-Hochberg adjusted over every combination
   tested (an exploratory search: false discovery rate, not family-wise error).
4. Kept: significant, effect (error rate minus the overall rate) at least ``min_effect``, and
   significantly worse, by ``min_effect``, than the rest of each of its parents (``cam-03 &
   tier=pro`` adds nothing to ``cam-03`` when the two are equally bad); combinations covering
   the very same rows as a shorter one are dropped. Ranked by effect size, then support.

Example
-------
Camera c3 is broken (40 % errors against 10 %):

>>> rng = np.random.default_rng(0)
>>> n = 20_000
>>> attrs = {"camera": rng.choice(np.array(["c1", "c2", "c3", "c4"]), n),
...          "tier": rng.choice(np.array(["free", "pro"]), n),
...          "region": rng.choice(np.array(["eu", "us"]), n)}
>>> error = rng.random(n) < np.where(attrs["camera"] == "c3", 0.4, 0.1)
>>> found = discover(attrs, error, min_support=200)
>>> [(f.name, f.n, round(f.effect, 3)) for f in found]
[('camera=c3', 5029, 0.225)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import stats

_MAX_CODE = np.iinfo(np.int64).max


@dataclass(frozen=True, slots=True)
class SliceFinding:
    conditions: tuple[tuple[str, str], ...]  # (attribute, value), attributes in input order
    n: int  # labelled predictions in the slice (support)
    errors: int
    error_rate: float
    overall_rate: float
    effect: float  # error_rate - overall_rate
    ci: tuple[float, float]  # Wilson interval of error_rate
    p_value: float  # raw, one-sided, slice vs the rest
    p_adjusted: float  # Benjamini-Hochberg over every combination tested

    @property
    def name(self) -> str:
        return ",".join(f"{a}={v}" for a, v in self.conditions)


@dataclass(frozen=True, slots=True)
class _Candidate:
    conditions: tuple[tuple[str, str], ...]
    n: int
    errors: int
    fingerprint: int  # sum of row indices: equal (n, errors, fingerprint) = the same rows


def _encode(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniq, codes = np.unique(np.asarray(values).astype(str), return_inverse=True)
    return uniq, codes.astype(np.int64)


def _count(codes: Sequence[np.ndarray], sizes: Sequence[int], rows: np.ndarray,
           error: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Support, errors and row-index sums of every joint code present among ``rows``."""
    joint = np.zeros(len(rows), np.int64)
    for c, size in zip(codes, sizes):
        joint = joint * size + c[rows]
    uniq, inverse = np.unique(joint, return_inverse=True)
    n = np.bincount(inverse, minlength=len(uniq))
    e = np.bincount(inverse, weights=error[rows], minlength=len(uniq)).round().astype(np.int64)
    fp = np.bincount(inverse, weights=rows.astype(np.float64), minlength=len(uniq))
    return uniq, n, e, fp.astype(np.int64)


def _decode(joint: int, sizes: Sequence[int]) -> list[int]:
    out = []
    for size in reversed(sizes):
        out.append(joint % size)
        joint //= size
    return out[::-1]


def _adds_to(child: _Candidate, parent: _Candidate, min_effect: float, level: float) -> bool:
    """Is the child worse than the rest of its parent, by ``min_effect`` and significantly
    (one-sided z-test at ``level``, Bonferroni over the candidates)? Without this, noise makes
    some sub-slice of every bad slice look a little worse still."""
    rest_n, rest_e = parent.n - child.n, parent.errors - child.errors
    if rest_n <= 0:
        return False
    r_child, r_rest = child.errors / child.n, rest_e / rest_n
    pooled = parent.errors / parent.n
    se = np.sqrt(pooled * (1 - pooled) * (1 / child.n + 1 / rest_n))
    if r_child - r_rest < min_effect or se == 0:
        return False
    return bool(stats.norm.sf((r_child - r_rest) / se) <= level)


def discover(attrs: Mapping[str, np.ndarray], error: np.ndarray, *, max_order: int = 3,
             min_support: int = 50, min_effect: float = 0.02, alpha: float = 0.05,
             top_k: int = 20, confidence: float = 0.95) -> tuple[SliceFinding, ...]:
    """The worst slices of labelled predictions (``error[i]``: prediction ``i`` was wrong)."""
    error = np.asarray(error, bool)
    n_all = len(error)
    if n_all == 0:
        return ()
    e_all = int(error.sum())
    names = list(attrs)
    encoded = {a: _encode(attrs[a]) for a in names}
    # Apriori: the frequent values of each attribute; rows with another value cannot be in any
    # frequent combination that includes the attribute.
    frequent = {}
    for a in names:
        counts = np.bincount(encoded[a][1], minlength=len(encoded[a][0]))
        frequent[a] = counts[encoded[a][1]] >= min_support
    candidates: list[_Candidate] = []
    alive: set[tuple[str, ...]] = set()
    for k in range(1, max_order + 1):
        for combo in combinations(names, k):
            if k > 1 and any(sub not in alive for sub in combinations(combo, k - 1)):
                continue
            mask = np.ones(n_all, bool)
            for a in combo:
                mask &= frequent[a]
            rows = np.flatnonzero(mask)
            if len(rows) < min_support:
                continue
            sizes = [len(encoded[a][0]) for a in combo]
            joint, n, e, fp = _count([encoded[a][1] for a in combo], sizes, rows,
                                     error.astype(np.float64))
            keep = np.flatnonzero(n >= min_support)
            if len(keep):
                alive.add(combo)
            for j in keep:
                values = _decode(int(joint[j]), sizes)
                conds = tuple((a, str(encoded[a][0][v])) for a, v in zip(combo, values))
                candidates.append(_Candidate(conds, int(n[j]), int(e[j]), int(fp[j])))
    return _select(candidates, n_all, e_all, min_effect, alpha, top_k, confidence)


def _select(candidates: list[_Candidate], n_all: int, e_all: int, min_effect: float,
            alpha: float, top_k: int, confidence: float) -> tuple[SliceFinding, ...]:
    if not candidates:
        return ()
    n = np.array([c.n for c in candidates], np.float64)
    e = np.array([c.errors for c in candidates], np.float64)
    rest_n, rest_e = n_all - n, e_all - e
    rate, overall = e / n, e_all / n_all
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = e_all / n_all
        se = np.sqrt(pooled * (1 - pooled) * (1 / n + 1 / np.maximum(rest_n, 1)))
        z = np.where((se > 0) & (rest_n > 0), (rate - rest_e / np.maximum(rest_n, 1)) / se, 0.0)
    p = stats.norm.sf(z)
    p_adj = stats.false_discovery_control(p, method="bh")
    z_ci = stats.norm.ppf(0.5 + confidence / 2)
    centre = (rate + z_ci**2 / (2 * n)) / (1 + z_ci**2 / n)
    half = z_ci / (1 + z_ci**2 / n) * np.sqrt(rate * (1 - rate) / n + z_ci**2 / (4 * n * n))
    by_conditions = {c.conditions: i for i, c in enumerate(candidates)}
    kept: list[int] = []
    seen_rows: set[tuple[int, int, int]] = set()
    order = sorted(range(len(candidates)), key=lambda i: (len(candidates[i].conditions), -rate[i]))
    for i in order:
        c = candidates[i]
        if p_adj[i] > alpha or rate[i] - overall < min_effect:
            continue
        parents = [by_conditions[sub] for sub in combinations(c.conditions, len(c.conditions) - 1)
                   if sub and sub in by_conditions]
        if any(not _adds_to(candidates[i], candidates[j], min_effect, alpha / len(candidates))
               for j in parents):
            continue
        rows_key = (c.n, c.errors, c.fingerprint)
        if rows_key in seen_rows:
            continue
        seen_rows.add(rows_key)
        kept.append(i)
    kept.sort(key=lambda i: (-(rate[i] - overall), -candidates[i].n, candidates[i].conditions))
    return tuple(SliceFinding(candidates[i].conditions, candidates[i].n, candidates[i].errors,
                              float(rate[i]), float(overall), float(rate[i] - overall),
                              (float(max(0.0, centre[i] - half[i])), float(min(1.0, centre[i] + half[i]))),
                              float(p[i]), float(p_adj[i]))
                 for i in kept[:top_k])
