"""Top-K slice values by volume: a Misra-Gries heavy-hitters sketch and the admission rule.

A sketch is a plain ``{value: count}`` dict of at most ``capacity`` counters. ``add`` folds exact
counts in and, when more than ``capacity`` values are held, subtracts the (capacity+1)-th largest
count from every counter and drops those that reach zero (Misra & Gries 1982; the merge is the
mergeable-summaries one of Agarwal et al. 2012, so partitions and checkpoints may be folded in
any order with the same guarantee: an estimate undercounts a value by at most N/(capacity+1)).
A value seen once among thousands of distinct ones is gone after the first prune: a burst of
junk ids ages out instead of holding slots.

``admit`` picks the K values of a window from the previous window's sketch: the largest counts
of at least ``min_volume`` (ties by value, so every process decides the same set from the same
sketch). An attribute with an allow-list admits exactly the listed values (at most K), whatever
the traffic.

>>> s = add({}, {"cam-1": 40, "cam-2": 25}, capacity=4)
>>> s = add(s, {f"junk-{i}": 1 for i in range(100)}, capacity=4)
>>> s
{'cam-1': 39, 'cam-2': 24}
>>> admit(s, k=3, min_volume=25), admit(s, k=3, min_volume=2, allow=("cam-9",))
(['cam-1'], ['cam-9'])
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from slices.assign import MISSING


def value_counts(column: np.ndarray | None, rows: np.ndarray | None, n: int) -> dict[str, int]:
    """Exact counts of an attribute column's values (as ``str``, ``missing`` for None or an
    absent column of ``n`` rows), of the ``rows`` selected (a mask; None: all). A hash count of
    the column's objects: sorting them as numpy strings cost ~6x as much per checkpoint.

    >>> value_counts(np.array(["a", None, "a", 3], dtype=object), None, 4)
    {'a': 2, 'missing': 1, '3': 1}
    >>> value_counts(None, np.array([True, False]), 2)
    {'missing': 1}
    """
    if column is None:
        return {MISSING: n if rows is None else int(np.count_nonzero(rows))}
    counts = Counter((column if rows is None else column[rows]).tolist())
    if all(type(v) is str for v in counts):
        return counts
    out: dict[str, int] = {}
    for v, c in counts.items():
        key = MISSING if v is None else str(v)
        out[key] = out.get(key, 0) + c
    return out


def add(sketch: Mapping[str, int], counts: Mapping[str, int], capacity: int) -> dict[str, int]:
    """``sketch`` plus ``counts`` (another sketch or exact counts), pruned to ``capacity``."""
    out = dict(sketch)
    for value, n in counts.items():
        out[value] = out.get(value, 0) + int(n)
    if len(out) <= capacity:
        return out
    cut = sorted(out.values(), reverse=True)[capacity]  # the (capacity+1)-th largest count
    return {v: n - cut for v, n in out.items() if n > cut}


def admit(sketch: Mapping[str, int], k: int, min_volume: int,
          allow: Sequence[str] = ()) -> list[str]:
    """The admitted values: the allow-list when given, else the heaviest K of at least
    ``min_volume``."""
    if allow:
        return list(dict.fromkeys(allow))[:k]
    ranked = sorted(sketch.items(), key=lambda kv: (-kv[1], kv[0]))
    return [value for value, n in ranked[:k] if n >= min_volume]
