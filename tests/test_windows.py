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


class RowsSeen:
    """A toy detector whose state is the event ids it observed, in order."""

    name, version = "rows", 1

    def empty(self) -> tuple:
        return ()

    def observe(self, state: tuple, batch) -> tuple:
        return state + tuple(batch.event_id.tolist())


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
