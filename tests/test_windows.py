"""The checkpoint's grouping: one sort per slice dimension per batch, the same rows per
(version, window, slice) key as selecting each key's rows directly, in batch order."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from monitor.core.stages import StageClock
from monitor.core.windows import Deltas, WindowAssigner
from monitor.store.keys import WindowKey
from monitor.testing import synthetic_batch
from slices import SliceCatalog, dimensions
from tests.detector_support import RowsSeen


def test_groups_select_each_keys_rows_in_batch_order():
    batch = synthetic_batch(3000, seed=4)
    rng = np.random.default_rng(1)
    batch = replace(batch, ts_ms=batch.ts_ms + rng.integers(0, 3, len(batch)) * 300_000,
                    model_version=rng.choice(np.array(["1", "2"], dtype=object), len(batch)),
                    attrs={**batch.attrs, "region": rng.choice(np.array(["eu", "us"], dtype=object),
                                                                len(batch))})
    assigner = WindowAssigner([RowsSeen()], dimensions(attributes=("camera_id", "region")),
                              SliceCatalog(), 300_000)
    deltas, clock = Deltas(), StageClock()
    assigner.observe(batch, assigner.slice_labels(batch), deltas, clock=clock)
    expected = {}
    starts = batch.ts_ms // 300_000 * 300_000
    for i, eid in enumerate(batch.event_id):
        v, w = batch.model_version[i], int(starts[i])
        names = ["all", f"camera_id={batch.attrs['camera_id'][i]}",
                 f"region={batch.attrs['region'][i]}"]
        for s in names:
            key = WindowKey("rows", "m", v, s, w)
            expected[key] = expected.get(key, ()) + (eid,)
    assert deltas.states == expected
    assert deltas.counts == {k: len(v) for k, v in expected.items()}
    assert set(clock.drain()) == {"slicing", "observe:rows"}


def test_groups_from_the_labelling_codes_equal_groups_from_factorised_labels():
    """groups() reuses the codes slice_labels made its labels from; a copy of the labels (as a
    checkpoint passes after dropping duplicates) is factorised afresh: the same groups, rows
    and order, with capped values folded into one ``other``, a cross, a bucket dimension
    with empty buckets, and two model versions."""
    batch = synthetic_batch(2000, seed=9)
    rng = np.random.default_rng(2)
    batch = replace(batch, ts_ms=batch.ts_ms + rng.integers(0, 3, len(batch)) * 300_000,
                    model_version=rng.choice(np.array(["1", "2"], dtype=object), len(batch)),
                    attrs={**batch.attrs, "region": rng.choice(
                        np.array(["eu", "us", None], dtype=object), len(batch))})
    dims = dimensions(attributes=("camera_id", "region"), crosses=(("camera_id", "region"),),
                      buckets={"latency_ms": (-5.0, -1.0, 1e9)})
    assigner = WindowAssigner([RowsSeen()], dims, SliceCatalog(max_values=2), 300_000)
    labels = assigner.slice_labels(batch)
    assert "camera_id=other" in set(labels[0][1])
    made = assigner.groups(batch, labels)
    fresh = assigner.groups(batch, [(d, lab.copy()) for d, lab in labels])
    assert [(g.version, g.start, g.slice, g.dim) for g in made] == [
        (g.version, g.start, g.slice, g.dim) for g in fresh]
    assert all(np.array_equal(a.rows, b.rows) for a, b in zip(made, fresh, strict=True))
    assert len({g.slice for g in made}) > 8
