"""A mergeable, bounded category counter, and its alignment with a reference.

A sketch is ``(names, counts, other)``: exact counts for at most ``cap`` categories plus the
total ``other`` of the rest. Which categories are kept is decided by a stable hash of the name
(the ``cap`` smallest hashes), never by arrival order, so a category is kept by the merge of two
sketches exactly when it is kept by a sketch of all the data: merging is exact, associative and
commutative, and memory is bounded however many distinct values arrive. Names are stored in
``(hash, name)`` order so equal data give equal sketches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from detectors.stats.embeddings import event_hashes
from slices.assign import STR_OR_NONE, factorize, first_seen_of


def _canonical(names: np.ndarray, counts: np.ndarray, other: int, cap: int,
               hashes: np.ndarray | None = None) -> tuple[tuple[str, ...], np.ndarray, int]:
    keep = counts > 0
    names, counts = names[keep], counts[keep]
    hashes = event_hashes(names) if hashes is None else hashes[keep]
    order = np.lexsort((names.astype(str), hashes))
    names, counts = names[order], counts[order]
    other += int(counts[cap:].sum())
    return tuple(str(v) for v in names[:cap]), counts[:cap].astype(np.int64), other


def present(values: np.ndarray) -> np.ndarray:
    """Mask of values that are present: not None and not a float NaN."""
    values = np.asarray(values, dtype=object)
    present_ = np.not_equal(values, None)
    # Attributes are strings and None: only a float can be NaN, so the per-value test (a
    # Python call per row) runs only when some value is a float.
    if any(issubclass(t, float) for t in set(map(type, values.ravel().tolist()))):
        isnan = np.frompyfunc(lambda v: isinstance(v, float) and v != v, 1, 1)(values)
        present_ &= ~isnan.astype(bool)
    return present_


def count(values: np.ndarray, cap: int) -> tuple[tuple[str, ...], np.ndarray, int]:
    """Sketch of the present values (compared as ``str``) of an object array.

    >>> names, counts, other = count(np.array(["a", "b", "a", None], dtype=object), cap=10)
    >>> sorted(zip(names, counts.tolist())), other
    ([('a', 2), ('b', 1)], 0)
    """
    values = np.asarray(values, dtype=object)
    strs = values[present(values)].astype(str)
    names, counts = np.unique(strs, return_counts=True)
    return _canonical(names.astype(object), counts.astype(np.int64), 0, cap)


def codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(names, hashes, code)``: the distinct present values (as ``str``) in sketch order
    (``(hash, name)``, as :func:`_canonical` orders them), their hashes, and each row's index
    into them (-1 where absent), so many groups of rows are counted with ``bincount`` after
    one pass over the strings and one sort of the distinct values (:func:`count_codes`)."""
    values = np.asarray(values, dtype=object)
    code = np.full(len(values), -1, np.int64)
    found = first_seen_of(values.tolist(), STR_OR_NONE)
    if found is not None:  # attributes as decoded: one pass over the rows
        distinct, row = found
        uniq = np.array(distinct, dtype=object)
        keep = np.not_equal(uniq, None)
        if not keep.any():
            return np.zeros(0, dtype=object), np.zeros(0, np.uint64), code
        of_distinct = np.full(len(uniq), -1, np.int64)
        names, of_distinct[keep] = factorize(uniq[keep])
        code = of_distinct[row]
        ok = code >= 0
    else:  # numbers too (1 and 1.0 are one dict key, two names): the rows' strings decide
        ok = present(values)
        if not ok.any():
            return np.zeros(0, dtype=object), np.zeros(0, np.uint64), code
        names, code[ok] = factorize(values[ok])
    hashes = event_hashes(names.astype(object))
    order = np.lexsort((names, hashes))
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    code[ok] = rank[code[ok]]
    return names[order].astype(object), hashes[order], code


def count_codes(names: np.ndarray, hashes: np.ndarray, code: np.ndarray,
                cap: int) -> tuple[tuple[str, ...], np.ndarray, int]:
    """:func:`count` of the rows whose :func:`codes` are ``code`` (same sketch, no strings and
    no sort: the names are in sketch order already).

    >>> names, hashes, code = codes(np.array(["a", "b", "a", None], dtype=object))
    >>> count_codes(names, hashes, code[[0, 2, 3]], 10) == count(np.array(["a", "a", None]), 10)
    True
    """
    counts = np.bincount(code[code >= 0], minlength=len(names)).astype(np.int64)
    keep = np.flatnonzero(counts)
    return (tuple(names[keep[:cap]].tolist()), counts[keep[:cap]],
            int(counts[keep[cap:]].sum()))


def group_count_codes(names: np.ndarray, hashes: np.ndarray, code: np.ndarray,
                      groups: Sequence[np.ndarray],
                      cap: int) -> list[tuple[tuple[str, ...], np.ndarray, int]]:
    """:func:`count_codes` of each group of rows (``code`` and ``names`` from :func:`codes`):
    all groups' counts in one ``bincount`` of (group, code) when that table stays within a
    few entries per row, else group by group.

    >>> names, hashes, code = codes(np.array(["a", "b", "a", None], dtype=object))
    >>> group_count_codes(names, hashes, code, [np.array([0, 2, 3]), np.array([1])], 10) == [
    ...     count_codes(names, hashes, code[[0, 2, 3]], 10),
    ...     count_codes(names, hashes, code[[1]], 10)]
    True
    """
    sizes = np.fromiter((len(g) for g in groups), np.int64, len(groups))
    if len(groups) * len(names) > 4 * int(sizes.sum()) + 4096:  # many values: a sparse table
        return [count_codes(names, hashes, code[g], cap) for g in groups]
    rows = np.concatenate(groups).astype(np.int64) if len(groups) else np.zeros(0, np.int64)
    which = np.repeat(np.arange(len(groups)), sizes)
    c = code[rows]
    ok = c >= 0
    table = np.bincount(which[ok] * len(names) + c[ok],
                        minlength=len(groups) * len(names)).reshape(len(groups), len(names))
    out = []
    for counts in table:
        keep = np.flatnonzero(counts)
        out.append((tuple(names[keep[:cap]].tolist()), counts[keep[:cap]].astype(np.int64, copy=False),
                    int(counts[keep[cap:]].sum())))
    return out


def merge(a: tuple[tuple[str, ...], np.ndarray, int], b: tuple[tuple[str, ...], np.ndarray, int],
          cap: int) -> tuple[tuple[str, ...], np.ndarray, int]:
    """Sum of two sketches, re-capped."""
    if a[0] == b[0] and len(a[0]) <= cap:
        # The same kept categories (the usual case: every camera in both): both sketches keep
        # the ``cap`` smallest hashes of their categories, so the sum keeps them too, in the
        # same order -- no re-hashing and sorting of the names.
        counts = np.asarray(a[1], np.int64) + np.asarray(b[1], np.int64)
        if counts.size == 0 or counts.min() > 0:
            return a[0], counts, a[2] + b[2]
    totals: dict[str, int] = {}
    for names, counts, _ in (a, b):
        for name, c in zip(names, counts.tolist(), strict=True):
            totals[name] = totals.get(name, 0) + c
    hashes = _known_hashes(list(totals))
    # What _canonical does, on the few names in Python: order by (hash, name), keep ``cap``;
    # a tie of two hashes (never seen) goes the numpy way, which compares the names as numpy
    # strings.
    kept = sorted((h, name, c) for (name, c), h in zip(totals.items(), hashes, strict=True)
                  if c > 0)
    if any(x[0] == y[0] for x, y in zip(kept, kept[1:])):
        return _canonical(np.asarray(list(totals), dtype=object),
                          np.asarray(list(totals.values()), dtype=np.int64), a[2] + b[2], cap,
                          np.array(hashes, np.uint64))
    return (tuple(name for _, name, _ in kept[:cap]),
            np.array([c for _, _, c in kept[:cap]], np.int64),
            a[2] + b[2] + sum(c for _, _, c in kept[cap:]))


#: name -> its :func:`event_hashes` value, for merges of sketches with different names (a
#: checkpoint merges one per slice and attribute whenever a camera is missing from a batch):
#: the same values, without a BLAKE2b per name per merge. Bounded: cleared when full.
_HASHES: dict[str, int] = {}
_HASHES_MAX = 1 << 16


def _known_hashes(names: list[str]) -> list[int]:
    """``event_hashes(names)`` as ints, each name hashed once per process while it stays in
    :data:`_HASHES`."""
    out = [_HASHES.get(n) for n in names]
    missing = [n for n, h in zip(names, out, strict=True) if h is None]
    if missing:
        fresh = dict(zip(missing, event_hashes(np.asarray(missing, dtype=object)).tolist(),
                         strict=True))
        if len(_HASHES) + len(fresh) > _HASHES_MAX:
            _HASHES.clear()
        _HASHES.update(fresh)
        out = [fresh[n] if h is None else h for n, h in zip(names, out, strict=True)]
    return out


def align(ref_names: np.ndarray, ref_counts: np.ndarray, ref_other: int,
          win_names: tuple[str, ...], win_counts: np.ndarray,
          win_other: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Category columns comparable on both sides, plus a last pooled column ``"(other)"``.

    A category is its own column when its count is known on both sides: a reference category is
    known in the window when the window kept it or dropped nothing (then it is truly 0); a new
    window category is a column (reference count 0) only when the reference dropped nothing.
    Everything else is pooled, on both sides alike, so the pooled column compares like with like.
    """
    win = dict(zip(win_names, win_counts.tolist(), strict=True))
    ref = dict(zip([str(v) for v in ref_names], np.asarray(ref_counts).tolist(), strict=True))
    cols = [c for c in ref if c in win or win_other == 0]
    if ref_other == 0:
        cols += [c for c in win if c not in ref]
    r = np.asarray([ref.get(c, 0) for c in cols], np.int64)
    w = np.asarray([win.get(c, 0) for c in cols], np.int64)
    r_pool = sum(ref.values()) + ref_other - int(r.sum())
    w_pool = sum(win.values()) + win_other - int(w.sum())
    return cols + ["(other)"], np.append(r, r_pool), np.append(w, w_pool)
