"""Embedding helpers: the deterministic bottom-k sample, PCA, cosine distance and the RBF
bandwidth by principal-axis prefix.

Bottom-k sampling: each event gets a pseudo-random 64-bit hash of its ``event_id``; a sample of
size k keeps the k events with the smallest hashes. The result depends only on the set of events
seen, never on their order or on how they were partitioned, so merging two samples (union, keep
the k smallest) is associative and commutative, and it is a uniform random sample of the events
as long as ids are unique. A keyed BLAKE2b keeps it stable across processes and Python versions
(``hash()`` is salted per process).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

_HASH_KEY = b"vitmon-bottom-k-v1"


def event_hashes(ids: np.ndarray) -> np.ndarray:
    """uint64 hash of each id (``str()`` of it), stable across processes.

    >>> int(event_hashes(np.array(["e1"], dtype=object))[0]) == int(event_hashes(["e1"])[0])
    True
    """
    if len(ids) == 0:
        return np.zeros(0, dtype=np.uint64)
    # Copying a keyed hasher skips hashing the key block again: half the time of a new
    # hasher per id (bench/observe.py); the digests are the same bytes.
    keyed = hashlib.blake2b(digest_size=8, key=_HASH_KEY)
    digests = []
    for v in ids:
        h = keyed.copy()
        h.update(str(v).encode())
        digests.append(h.digest())
    return np.frombuffer(b"".join(digests), dtype="<u8").astype(np.uint64)


def bottom_k(hashes: np.ndarray, ids: np.ndarray, k: int,
             rows: np.ndarray | None = None) -> np.ndarray:
    """Indices of the ``k`` smallest ``(hash, id)`` pairs, in that order (ties broken by id so
    the choice is total even under a hash collision). The id of ``hashes[i]`` is ``ids[i]``, or
    ``ids[rows[i]]`` given ``rows``: a group of a batch then needs no gather of its (object)
    ids, which only a collision reads."""
    if hashes.size <= k:
        keep = np.arange(hashes.size)
    else:
        # Partition first so a large batch costs O(n), then sort the survivors exactly.
        cut = np.partition(hashes, k - 1)[k - 1]
        keep = np.flatnonzero(hashes <= cut)
    kept = hashes[keep]
    order = np.argsort(kept, kind="stable")
    if np.any(kept[order[1:]] == kept[order[:-1]]):  # a collision: the ids decide
        tied = ids[keep if rows is None else rows[keep]]
        order = np.lexsort((np.asarray([str(v) for v in tied], dtype=object), kept))
    return keep[order][:k]


def group_bottom_k(hashes: np.ndarray, ids: np.ndarray, rows: np.ndarray, starts: np.ndarray,
                   k: int) -> list[np.ndarray]:
    """``rows[lo:hi][bottom_k(hashes[rows[lo:hi]], ids, k, rows=rows[lo:hi])]`` of every group
    ``rows[lo:hi]`` (``starts`` where each begins, as ``monitor.contract.group_offsets`` lays
    them out): the groups' rows ranked by hash in one sort, not a partition and a sort per
    group. Rows sharing a hash (the ids decide then) take the group-by-group way.

    >>> h = np.array([30, 10, 20, 40], dtype=np.uint64)
    >>> [g.tolist() for g in group_bottom_k(h, None, np.array([0, 1, 2, 3, 0]), [0, 3], 2)]
    [[1, 2], [0, 3]]
    """
    sizes = np.diff(np.r_[starts, len(rows)]).astype(np.int64)
    ends = np.cumsum(sizes)
    order = np.argsort(hashes)
    if np.any(hashes[order[1:]] == hashes[order[:-1]]):
        return [rows[lo:hi][bottom_k(hashes[rows[lo:hi]], ids, k, rows=rows[lo:hi])]
                for lo, hi in zip((ends - sizes).tolist(), ends.tolist(), strict=True)]
    n = len(hashes)
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    # Group-major keys, by hash inside a group: sorted, each group's block stays in its place.
    key = np.sort(np.repeat(np.arange(len(sizes)) * n, sizes) + rank[rows])
    take = np.minimum(sizes, k)
    bounds = np.cumsum(take) - take
    kept = order[key[np.repeat(ends - sizes - bounds, take) + np.arange(int(take.sum()))] % n]
    return [kept[lo:lo + t] for lo, t in zip(bounds.tolist(), take.tolist(), strict=True)]


def fit_pca(x: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Principal axes of ``x`` [n, d]: ``(mean [d], components [d, q], explained_variance [q])``.

    Signs are fixed (largest-magnitude loading positive) so the basis is deterministic.
    """
    x = np.asarray(x, np.float64)
    mean = x.mean(0)
    q = int(min(n_components, x.shape[1], max(x.shape[0] - 1, 1)))
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    comps = vt[:q].T
    flip = np.sign(comps[np.argmax(np.abs(comps), axis=0), np.arange(q)])
    comps = comps * np.where(flip == 0, 1.0, flip)
    var = s[:q] ** 2 / max(x.shape[0] - 1, 1)
    return mean, comps, var


def project(x: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Coordinates of ``x`` on a PCA basis from :func:`fit_pca` (float32).

    Computed in float32 (4x faster on 768-d inputs); centring first keeps the error ~1e-6
    relative, far below sampling noise.
    """
    centred = np.asarray(x, np.float32) - np.asarray(mean, np.float32)
    return centred @ np.asarray(components, np.float32)


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """``1 - cos(a, b)``; NaN when either vector is zero.

    >>> cosine_distance(np.array([1.0, 0.0]), np.array([0.0, 2.0]))
    1.0
    """
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0 or nb == 0:
        return math.nan
    return float(1.0 - np.dot(a, b) / (na * nb))


def median_heuristic_by_prefix(x: np.ndarray, max_points: int = 1000) -> np.ndarray:
    """The median-heuristic RBF bandwidth (:func:`detectors.stats.mmd.median_heuristic`) of
    ``x[:, :j]`` for every ``j = 1 .. d`` (float64 [d]).

    A reference profile stores these so a detector using its first ``q`` principal axes reads
    its bandwidth instead of recomputing O(n^2) distances on every evaluation.
    """
    z = np.asarray(x[:max_points], np.float64)
    iu = np.triu_indices(z.shape[0], k=1)
    d2 = np.zeros(iu[0].size)
    out = np.empty(z.shape[1])
    for j in range(z.shape[1]):
        d2 += (z[iu[0], j] - z[iu[1], j]) ** 2
        med = float(np.median(d2)) if d2.size else 0.0
        out[j] = med if med > 0 else 1.0  # all points identical: any bandwidth gives MMD = 0
    return out
