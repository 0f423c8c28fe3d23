"""Per-row observe work run ahead (``monitor.contract.Precomputable``): ``embedding_drift``'s
projections computed before observing (in the decode worker) give the very same states, rows
computed for another basis are never used, and the decode worker adds the rows it is given
functions for, to batches of one model version only."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from detectors.embedding_drift import EmbeddingDrift
from detectors.reference import ProfileConfig, build_reference_profile
from detectors.testing import make_batch
from monitor.contract import PRECOMPUTED, Batch, Reference, precomputed
from monitor.core.decode_pool import DecodePool
from monitor.core.windows import Deltas, WindowAssigner
from slices import SliceCatalog, dimensions
from tests.test_decode_pool import _records

DIM = 48


def _window(rng: np.random.Generator, mix: np.ndarray, n: int) -> Batch:
    z = rng.normal(0, 1, (n, mix.shape[0]))
    emb = (z @ mix + rng.normal(0, 1, (n, DIM))).astype(np.float16)
    cams = np.array([f"cam-{i % 3}" for i in range(n)], dtype=object)
    batch = make_batch(n, rng, embedding=emb, attrs={"camera_id": cams})
    # sent as float16 (the decoder keeps it so), some events without an embedding
    return replace(batch, embedding=emb, has_embedding=np.arange(n) % 11 != 5,
                   ts_ms=np.arange(n, dtype=np.int64) * 1_000)


@pytest.fixture(scope="module")
def setting() -> tuple[EmbeddingDrift, Reference, Batch]:
    rng = np.random.default_rng(5)
    mix = rng.normal(0, 1, (6, DIM))
    profile = build_reference_profile([_window(rng, mix, 300) for _ in range(3)], ProfileConfig(
        embedding_sample_size=600, pca_fit_size=600))
    det = EmbeddingDrift(n_components=4, sample_size=20)
    return det, Reference("vit", "1", 1, profile), _window(rng, mix, 700)


def _with(batch: Batch, column: str, rows: np.ndarray) -> Batch:
    return replace(batch, extras={**batch.extras, column: rows})


def _observe(det: EmbeddingDrift, ref: Reference, batch: Batch) -> list[bytes]:
    groups = [np.arange(0, len(batch), 2), np.arange(1, len(batch), 3), np.arange(len(batch))]
    states = det.observe_groups([det.empty()] * 3, batch, groups, ref)
    return [det.dumps(s) for s in states]


def test_projections_run_ahead_give_the_same_states(setting):
    det, ref, batch = setting
    fn = det.precompute(ref)
    ahead = fn(batch)
    assert ahead.shape == (len(batch), 4 + 1 + 1) and ahead.dtype == np.int64  # + id hash
    column = PRECOMPUTED.format(det.name, fn.key)
    plain = _observe(det, ref, batch)
    assert _observe(det, ref, _with(batch, column, ahead)) == plain
    # rows taken out of the batch (a checkpoint's new rows) keep theirs
    rows = np.flatnonzero(np.arange(len(batch)) % 4 != 1)
    assert (_observe(det, ref, _with(batch, column, ahead).take(rows))
            == _observe(det, ref, batch.take(rows)))
    # ... and they are what observe folds: other values would give other states
    assert _observe(det, ref, _with(batch, column, ahead + 1)) != plain


def test_rows_precomputed_on_another_basis_are_not_used(setting):
    det, ref, batch = setting
    other = Reference("vit", "1", 1, {**ref.profile, "embedding": {
        **ref.profile["embedding"],
        "pca_mean": np.asarray(ref.profile["embedding"]["pca_mean"]) + 0.5}})
    theirs = det.precompute(other)
    assert theirs.key != det.precompute(ref).key  # same reference id, another basis
    wrong = _with(batch, PRECOMPUTED.format(det.name, theirs.key), theirs(batch))
    assert _observe(det, ref, wrong) == _observe(det, ref, batch)
    assert precomputed(wrong, det.name, det.precompute(ref).key) is None


def test_the_window_assigner_hands_embedding_drift_its_precomputed_rows(setting):
    """The core thins the batch per detector (``wide_columns``): the precomputed rows stay."""
    det, ref, batch = setting
    fn = det.precompute(ref)
    column = PRECOMPUTED.format(det.name, fn.key)

    def states(b: Batch) -> dict:
        assigner = WindowAssigner([det], dimensions(("camera_id",)), SliceCatalog(10), 60_000)
        deltas = Deltas()
        assigner.observe(b, assigner.slice_labels(b), deltas, lambda m, v: ref)
        return {k: det.dumps(s) for k, s in deltas.states.items()}

    plain = states(batch)
    assert len(plain) == 12 * 4  # 12 one-minute windows x (all + 3 cameras)
    assert states(_with(batch, column, fn(batch))) == plain
    assert states(_with(batch, column, fn(batch) * 2)) != plain


class RowSum:
    """A precompute for the worker test (module level: pickled into the worker)."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, batch: Batch) -> np.ndarray:
        return np.asarray(batch.embedding, np.float64).sum(1) + len(self.key)


class Raising(RowSum):
    def __call__(self, batch: Batch) -> np.ndarray:
        raise ValueError("a broken plugin")


def test_the_decode_worker_adds_the_rows_of_the_functions_it_is_given():
    pool = DecodePool(1)
    pool.start()
    try:
        def decoded(precomputes, gate=None):
            pool.submit(_records(40), gate or {("m", "1"): 4}, precomputes)
            return pool.result().batches

        one = {("m", "1"): [(PRECOMPUTED.format("d", "a"), RowSum("a"))]}
        batch = decoded(one)["m"]
        assert set(batch.model_version) == {"1"}  # version 2 parks
        np.testing.assert_array_equal(batch.extras[PRECOMPUTED.format("d", "a")],
                                      RowSum("a")(batch))
        assert PRECOMPUTED.format("d", "a") in decoded(one)["m"].extras  # kept, not re-sent
        swapped = decoded({("m", "1"): [(PRECOMPUTED.format("d", "bb"), RowSum("bb"))]})["m"]
        assert [k for k in swapped.extras if k.startswith("_precomputed")] == [
            PRECOMPUTED.format("d", "bb")]
        np.testing.assert_array_equal(swapped.extras[PRECOMPUTED.format("d", "bb")],
                                      RowSum("bb")(swapped))
        # a batch of two versions, one without functions: no rows (observe computes them)
        both = decoded(one, {("m", "1"): 4, ("m", "2"): 4})["m"]
        assert set(both.model_version) == {"1", "2"}
        assert not [k for k in both.extras if k.startswith("_precomputed")]
        assert not [k for k in decoded({})["m"].extras if k.startswith("_precomputed")]
        # a function that raises adds nothing (observe computes it, and fails there), the
        # others' rows come, and the worker decodes on
        broken = decoded({("m", "1"): [(PRECOMPUTED.format("d", "x"), Raising("x")),
                                       (PRECOMPUTED.format("d", "a"), RowSum("a"))]})["m"]
        assert [k for k in broken.extras if k.startswith("_precomputed")] == [
            PRECOMPUTED.format("d", "a")]
        assert len(decoded(one)["m"]) == len(batch)
    finally:
        pool.close()
