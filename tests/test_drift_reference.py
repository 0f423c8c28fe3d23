"""Reference profiles: documented keys, storable values, order independence, disjoint PCA fit."""

import io
import re

import numpy as np
import pytest

from detectors import reference
from detectors.reference import ProfileConfig, build_reference_profile
from detectors.stats import embeddings as emb
from detectors.synthetic import Traffic

CONFIG = ProfileConfig(embedding_sample_size=300, pca_fit_size=200, pca_components=6)


@pytest.fixture(scope="module")
def batches():
    rng = np.random.default_rng(0)
    return [Traffic(seed=3, dim=24).batch(rng, n) for n in (400, 250, 350)]


@pytest.fixture(scope="module")
def profile(batches):
    return build_reference_profile(batches, CONFIG)


def leaves(tree, path=""):
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from leaves(v, f"{path}{k}.")
        else:
            yield f"{path}{k}", v


def test_values_are_arrays_floats_strings_or_dicts(profile):
    for path, value in leaves(profile):
        assert isinstance(value, (np.ndarray, float, str)), path
        if isinstance(value, np.ndarray):
            assert value.dtype != object, path
            np.save(io.BytesIO(), value, allow_pickle=False)  # storable as .npy


def test_every_key_is_documented(profile):
    doc = reference.__doc__
    for path, _ in leaves(profile):
        last = path.split(".")[-1]
        assert re.search(rf"``{re.escape(last)}``", doc), f"{path} is not documented"
    for section in ("numeric", "categorical", "prediction", "embedding"):
        assert f"``{section}" in doc


def test_contents(profile, batches):
    n = sum(len(b) for b in batches)
    assert profile["schema"] == "vitmon.reference/v1" and profile["n_events"] == n
    bright = profile["numeric"]["image.brightness"]
    assert bright["counts"].sum() == n and len(bright["edges"]) == len(bright["counts"]) + 1
    assert np.all(np.diff(bright["edges"]) > 0) and len(bright["counts"]) == 10
    assert np.all(np.abs(bright["counts"] - n / 10) < n / 10 * 0.2)
    width = profile["numeric"]["image.width"]  # 4 distinct values: fewer, unequal bins
    assert width["counts"].sum() == n and len(width["counts"]) <= 4
    cam = profile["categorical"]["attrs.camera_id"]
    assert cam["counts"].sum() == n and cam["other"] == 0.0 and len(cam["categories"]) == 8
    pred = profile["prediction"]
    assert pred["class_freq"].sum() == pytest.approx(1.0)
    # 10 classes, all among the top 20: one softmax row each plus "other" (mass ~0 here).
    assert sorted(pred["top_classes"]) == list(range(10)) and pred["probs_counts"].shape[0] == 11
    assert pred["probs_counts"].sum(1).tolist() == [n] * 11
    e = profile["embedding"]
    assert e["sample"].shape == (300, 24) and e["pca_components"].shape == (24, 6)
    assert e["pca_fit_n"] == 200.0 and e["mean"].shape == (24,)


def test_pca_is_fitted_on_rows_disjoint_from_the_sample(profile, batches):
    ids = np.concatenate([b.event_id for b in batches])
    order = np.argsort(emb.event_hashes(ids))
    assert list(profile["embedding"]["sample_ids"]) == list(ids[order[:300]])
    fit_rows = np.concatenate([b.embedding for b in batches])[order[300:500]]
    mean, _, var = emb.fit_pca(fit_rows, 6)
    assert np.allclose(profile["embedding"]["pca_mean"], mean)
    assert np.allclose(profile["embedding"]["pca_explained_variance"], var)


def test_order_and_chunking_do_not_matter(profile, batches):
    again = build_reference_profile(list(reversed(batches)), CONFIG)
    for (path, a), (_, b) in zip(leaves(profile), leaves(again), strict=True):
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            assert a.shape == b.shape and np.allclose(a, b, rtol=1e-9, atol=1e-12), path
        elif isinstance(a, np.ndarray):
            assert np.array_equal(a, b), path
        else:
            assert a == pytest.approx(b, rel=1e-12) if isinstance(a, float) else a == b, path


def test_accepts_a_mapping_of_columns():
    rng = np.random.default_rng(1)
    prof = build_reference_profile({"latency_ms": rng.lognormal(3, 0.2, 500),
                                    "image": {"brightness": rng.uniform(0, 1, 500)}})
    assert set(prof["numeric"]) == {"latency_ms", "image.brightness"}
    assert "embedding" not in prof and prof["prediction"]["n"] == 0.0


def test_small_reference_still_splits_sample_and_pca_rows():
    rng = np.random.default_rng(2)
    prof = build_reference_profile(Traffic(seed=0, dim=8).batch(rng, 100), CONFIG)
    e = prof["embedding"]
    assert len(e["sample"]) + e["pca_fit_n"] == 100 and len(e["sample"]) == 60


def test_feature_drift_builds_a_reference_from_a_warm_up_state():
    """A slice without its own reference can get one from a warm-up period: the entries equal
    what reference capture builds from the same events."""
    from detectors.feature_drift import FeatureDrift

    batch = Traffic(seed=3, dim=8).batch(np.random.default_rng(3), 600)
    det = FeatureDrift(exclude=())
    warm = det.reference_from_state(det.observe(det.empty(), batch))
    captured = build_reference_profile(batch)
    assert set(warm["numeric"]) == set(captured["numeric"])
    for k, entry in warm["numeric"].items():
        assert np.array_equal(entry["counts"], captured["numeric"][k]["counts"])
        assert np.array_equal(entry["edges"], captured["numeric"][k]["edges"])
    assert set(warm["categorical"]) == set(captured["categorical"])
