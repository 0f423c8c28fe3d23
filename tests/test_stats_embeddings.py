"""Bottom-k sampling, category sketches, PCA, cosine distance, the permutation test's sampler and
the saddlepoint's cumulants."""

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import cosine
from sklearn.decomposition import PCA

from detectors.stats import categories as cats
from detectors.stats import embeddings as emb
from detectors.stats import subspace
from detectors.stats.floatsum import numpy_sum
from detectors.stats.subspace import random_subsets


def test_hash_is_pinned():
    # The bottom-k sample is a function of these hashes: changing the hash silently changes every
    # stored sample, so it is pinned here (bump the detector version if it must change).
    h = emb.event_hashes(np.array(["event-1", "x", "event-1"], dtype=object))
    assert [hex(int(v)) for v in h] == ["0x4e8ad6f7fa5cced4", "0x4a5ae79ec3b59690",
                                        "0x4e8ad6f7fa5cced4"]
    assert h.dtype == np.uint64


def test_bottom_k_is_order_independent():
    ids = np.array([f"id{i}" for i in range(500)], dtype=object)
    h = emb.event_hashes(ids)
    a = set(ids[emb.bottom_k(h, ids, 50)])
    perm = np.random.default_rng(0).permutation(500)
    b = set(ids[perm][emb.bottom_k(h[perm], ids[perm], 50)])
    assert a == b and len(a) == 50
    assert set(ids[np.argsort(h)[:50]]) == a


def test_bottom_k_of_rows_reads_the_ids_of_those_rows_on_a_collision():
    ids = np.array([f"id{i}" for i in range(10)], dtype=object)
    rows = np.array([7, 2, 9, 4])
    h = np.array([5, 3, 3, 8], dtype=np.uint64)  # rows 2 and 9 collide: "id2" < "id9" first
    assert emb.bottom_k(h, ids, 2, rows=rows).tolist() == [1, 2]
    assert emb.bottom_k(h, ids[rows], 2).tolist() == [1, 2]
    ids[2], ids[9] = "z", "a"  # now row 9's id sorts first
    assert emb.bottom_k(h, ids, 2, rows=rows).tolist() == [2, 1]
    assert emb.bottom_k(h, ids[rows], 2).tolist() == [2, 1]


def test_bottom_k_is_roughly_uniform():
    ids = np.array([f"id{i}" for i in range(20_000)], dtype=object)
    keep = emb.bottom_k(emb.event_hashes(ids), ids, 2000)
    # Positions of the kept ids are uniform over the stream: about 10 % per decile.
    counts = np.bincount(keep // 2000, minlength=10)
    assert counts.min() > 140 and counts.max() < 260


def test_category_sketch_merge_is_exact_and_capped():
    rng = np.random.default_rng(1)
    values = rng.choice(np.array([f"c{i}" for i in range(40)], dtype=object), 3000)
    whole = cats.count(values, cap=10)
    a, b, c = (cats.count(v, cap=10) for v in np.split(values, [1000, 1100]))
    merged = cats.merge(cats.merge(a, b, 10), c, 10)
    other = cats.merge(c, cats.merge(b, a, 10), 10)
    for got in (merged, other):
        assert got[0] == whole[0] and np.array_equal(got[1], whole[1]) and got[2] == whole[2]
    assert len(whole[0]) == 10 and whole[1].sum() + whole[2] == 3000


def test_category_sketch_treats_none_and_nan_as_missing():
    names, counts, other = cats.count(np.array(["a", None, float("nan"), 3], dtype=object), 5)
    assert sorted(names) == ["3", "a"] and counts.sum() == 2 and other == 0


def test_category_alignment_pools_unknowns_on_both_sides():
    cols, r, w = cats.align(np.array(["a", "b", "c"]), np.array([50, 30, 20]), 0,
                            ("a", "d"), np.array([40, 5]), 10)
    # The window dropped categories (other=10): b and c are unknown there, so they are pooled;
    # d is new but the reference dropped nothing, so it is its own column.
    assert cols == ["a", "d", "(other)"]
    assert r.tolist() == [50, 0, 50] and w.tolist() == [40, 5, 10]


def test_fit_pca_matches_sklearn():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (300, 12)) @ rng.normal(0, 1, (12, 12))
    mean, comps, var = emb.fit_pca(x, 4)
    ref = PCA(4).fit(x)
    assert np.allclose(mean, ref.mean_)
    assert np.allclose(np.abs(comps.T), np.abs(ref.components_), atol=1e-8)
    assert np.allclose(var, ref.explained_variance_)
    assert np.allclose(np.abs(emb.project(x, mean, comps)), np.abs(ref.transform(x)), atol=1e-3)


def test_cosine_distance_matches_scipy():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=8), rng.normal(size=8)
    assert emb.cosine_distance(a, b) == pytest.approx(cosine(a, b))
    assert np.isnan(emb.cosine_distance(a, np.zeros(8)))


def test_random_subsets_are_uniform_over_every_k_subset():
    """Floyd's sampler behind the permutation test: every 2-of-5 subset (10) equally often."""
    rows = random_subsets(np.random.default_rng(3), 5, 2, 20_000)
    assert (rows.sum(1) == 2).all()
    codes = rows @ (2 ** np.arange(5))
    counts = np.unique(codes, return_counts=True)[1]
    assert len(counts) == 10
    assert stats.chisquare(counts).pvalue > 1e-3


def test_saddlepoint_cumulants_in_one_pass_equal_the_three_sums():
    # K'(s), K(s) and K''(s) from one pass over the weights: the same terms, summed in numpy's
    # order, as the three separate sums (at s < 0, s = 0, -0.0 and close to 1/2; 1 to 40
    # weights, below and above numpy's 8-way unrolling)
    rng = np.random.default_rng(3)
    for size in (1, 2, 7, 8, 9, 16, 17, 40):
        lam = rng.gamma(0.5, 1.0, size).tolist()
        top = max(lam)
        lam = [v / top for v in lam]
        for s in (-1e6, -3.0, -1e-9, -0.0, 0.0, 1e-9, 0.1, 0.3, 0.49, (1 - 1e-12) / 2):
            k1 = numpy_sum([v / (1 - 2 * v * s) for v in lam])
            kk = -0.5 * numpy_sum([math.log1p(-2 * v * s) for v in lam])
            k2 = numpy_sum([2 * (v * v) / ((1 - 2 * v * s) * (1 - 2 * v * s)) for v in lam])
            got = subspace._cumulants(s, lam)
            assert got == (k1, kk, k2), (size, s)
            assert [math.copysign(1, g) for g in got] == [math.copysign(1, w)
                                                          for w in (k1, kk, k2)]
