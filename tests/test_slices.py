"""Slices: vectorised assignment equals a per-row reference, caps, buckets, names, and the
worst-slice search."""

from __future__ import annotations

import numpy as np
import pytest

from slices import (
    MISSING,
    OTHER,
    SliceCatalog,
    assign,
    dimensions,
    format_conditions,
    group_labels,
    parse,
    quantile_edges,
)
from slices.assign import factorize
from slices.discovery import discover


def _naive(i, attrs, numeric, dims, admitted):
    """One row's slice names, computed the slow obvious way."""
    names = ["all"]
    for d in dims:
        if d.kind == "bucket":
            v = numeric.get(d.fields[0], np.full(i + 1, np.nan))[i]
            e = d.edges
            if np.isnan(v):
                names.append(f"{d.name}={MISSING}")
            elif v < e[0]:
                names.append(f"{d.name}<{e[0]:g}")
            elif v >= e[-1]:
                names.append(f"{d.name}>={e[-1]:g}")
            else:
                j = max(k for k in range(len(e)) if e[k] <= v)
                names.append(f"{d.name}=[{e[j]:g},{e[j + 1]:g})")
            continue
        parts = []
        for f in d.fields:
            col = attrs.get(f)
            v = MISSING if col is None or col[i] is None else str(col[i])
            parts.append(f"{f}={v if v in admitted[f] else OTHER}")
        names.append(",".join(parts))
    return names


def test_vectorised_assignment_equals_the_per_row_definition():
    rng = np.random.default_rng(0)
    n = 3000
    attrs = {"camera": rng.choice(np.array([f"c{i}" for i in range(12)] + [None], dtype=object), n),
             "region": rng.choice(np.array(["eu", "us", 7], dtype=object), n)}
    numeric = {"image.brightness": np.where(rng.random(n) < 0.05, np.nan, rng.random(n))}
    dims = dimensions(("camera", "device"), (("region", "camera"),),
                      {"image.brightness": (0.25, 0.5, 0.75)})
    catalog = SliceCatalog(max_values=8)
    got: list[list[str]] = [[] for _ in range(n)]
    for name, idx in assign(n, attrs, numeric, dims, catalog):
        for i in idx:
            got[i].append(name)
    admitted = {k: set(v) for k, v in catalog.admitted.items()}
    assert len(admitted["camera"]) == 8
    want = [_naive(i, attrs, numeric, dims, admitted) for i in range(n)]
    assert [sorted(g) for g in got] == [sorted(w) for w in want]


def test_cap_admits_the_first_values_seen_and_persists_across_batches():
    catalog = SliceCatalog(max_values=2)
    first = catalog.cap("cam", np.array(["b", "a", "b", "c"], dtype=object))
    assert first.tolist() == ["b", "a", "b", OTHER]
    assert catalog.drain_added() == [("cam", "b"), ("cam", "a")]
    again = catalog.cap("cam", np.array(["c", "a", "d"], dtype=object))
    assert again.tolist() == [OTHER, "a", OTHER] and catalog.drain_added() == []
    restored = SliceCatalog(max_values=2, admitted={"cam": {"b": None, "a": None}})
    assert restored.cap("cam", np.array(["c", "b"], dtype=object)).tolist() == [OTHER, "b"]


def test_names_parse_format_and_group_labels():
    assert parse(format_conditions({"region": "eu", "device": "a=b"})) == {"region": "eu",
                                                                           "device": "a=b"}
    for bad in ("image.brightness<0.3", "image.brightness=[0.3,0.6)", "novalue"):
        with pytest.raises(ValueError):
            parse(bad)
    attrs = {"g": np.array(["A", None, 2], dtype=object)}
    assert group_labels(attrs, ("g", "absent"), 3).tolist() == [
        "g=A,absent=missing", "g=missing,absent=missing", "g=2,absent=missing"]


def test_quantile_edges_split_reference_values_evenly():
    rng = np.random.default_rng(1)
    v = rng.lognormal(0, 1, 10_000)
    edges = quantile_edges(np.append(v, np.nan), 5)
    counts = np.bincount(np.searchsorted(edges, v, side="right"), minlength=5)
    assert len(edges) == 4 and counts.min() > 1900 and counts.max() < 2100
    assert quantile_edges(np.zeros(100), 4) == (0.0,)  # constant: one edge, no empty duplicates


def _population(seed: int, n: int = 30_000):
    rng = np.random.default_rng(seed)
    return rng, {"camera": rng.choice(np.array([f"c{i}" for i in range(8)]), n),
                 "region": rng.choice(np.array(["eu", "us", "ap"]), n),
                 "device": rng.choice(np.array(["cpu", "gpu"]), n),
                 "tier": rng.choice(np.array(["free", "pro", "ent"]), n, p=[0.6, 0.3, 0.1])}


def test_discovery_finds_an_interaction_that_neither_attribute_shows_alone():
    rng, attrs = _population(2)
    bad = (attrs["region"] == "us") & (attrs["device"] == "cpu")
    error = rng.random(len(bad)) < np.where(bad, 0.30, 0.10)
    found = discover(attrs, error, min_support=100)
    assert found[0].conditions == (("region", "us"), ("device", "cpu"))
    assert found[0].ci[0] > found[0].overall_rate and found[0].p_adjusted < 0.05
    # The parents are worse than average too (they contain the bad cross), but less so.
    assert all(f.effect <= found[0].effect for f in found)


def test_discovery_ranks_by_effect_and_reports_nothing_on_homogeneous_errors():
    # 20 seeded populations. On homogeneous errors nothing is found (BH keeps the chance of any
    # false discovery under alpha = 0.05; 0 of 40 while writing this). With two bad cameras both
    # are found, worst first; a noisy sub-slice of one slips through rarely (1 run in 100 while
    # writing this), so at most one run of 20 may show one.
    extra = 0
    for seed in range(20):
        rng, attrs = _population(seed)
        assert discover(attrs, rng.random(30_000) < 0.1, min_support=100) == ()
        rate = np.select([attrs["camera"] == "c1", attrs["camera"] == "c5"], [0.35, 0.2], 0.1)
        found = discover(attrs, rng.random(30_000) < rate, min_support=100)
        names = [f.name for f in found]
        assert names[0] == "camera=c1" and "camera=c5" in names, seed
        assert [f.effect for f in found] == sorted((f.effect for f in found), reverse=True)
        extra += len(names) - 2
    assert extra <= 1


def test_discovery_respects_support_and_drops_slices_with_the_same_rows():
    rng, attrs = _population(4, n=5_000)
    attrs["site"] = np.where(attrs["camera"] == "c2", "s-2", "s-other")  # c2 == s-2, row for row
    error = rng.random(5_000) < np.where(attrs["camera"] == "c2", 0.5, 0.1)
    found = discover(attrs, error, min_support=100, max_order=2)
    names = [f.name for f in found]
    assert names[0] in ("camera=c2", "site=s-2") and len({"camera=c2", "site=s-2"} & set(names)) == 1
    big = discover(attrs, error, min_support=2_000)
    assert all(f.n >= 2_000 for f in big)


@pytest.mark.parametrize("values", [
    ["v1"] * 5,
    ["b", "a", None, "b", "a"],
    [1, 1.0, True, "1", None, 2.5],
    ["a\0", "a", "b", "a\0"],
    ["x\0"] * 3,
    ["a", np.str_("a"), "b"],
    [np.str_("a"), "a"],
    [],
])
def test_factorize_is_numpys_unique_of_the_strings(values):
    arr = np.array(values + [object()], dtype=object)[:len(values)]  # an object array
    names, codes = factorize(arr)
    uniq, inverse = np.unique(arr.astype(str), return_inverse=True)
    assert names.tolist() == uniq.tolist()
    assert codes.tolist() == inverse.ravel().tolist()


def test_factorize_compares_unhashable_values_by_their_strings():
    values = np.empty(3, dtype=object)
    values[:] = [["x"], "x", ["x"]]
    names, codes = factorize(values)
    assert names.tolist() == ["['x']", "x"] and codes.tolist() == [0, 1, 0]
