"""Slices are the top-K values by volume, decided per window in PostgreSQL: two processes on
disjoint partitions, each seeing other cameras heavy, slice every window with the same values
(real broker and PostgreSQL), and the decision rule itself (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from slices import OTHER
from slices.sketch import add, admit
from tests.support import make_topics, monitor_env, query, start_monitor
from tests.test_intake import CLIENT, T0, WINDOW_MS, event, publish

#: Events per window per camera on partitions 0-2 and 3-5: alone, each side's top 3 differ.
VOLUME = {"cam-0": (60, 0), "cam-1": (50, 0), "cam-2": (30, 5), "cam-3": (0, 55),
          "cam-4": (5, 48), "cam-5": (0, 35)}


@pytest.mark.integration
def test_two_processes_on_disjoint_partitions_admit_the_same_slice_values(
        broker, db_url_factory, topic_names, tmp_path):
    topics = make_topics(topic_names, CLIENT, broker.bootstrap, partitions=6)
    parts: dict[int, list[bytes]] = {p: [] for p in range(6)}
    i = 0
    for w in range(4):
        for camera, sides in VOLUME.items():
            for side, n in enumerate(sides):
                for j in range(n):
                    ts = T0 + w * WINDOW_MS + (j * 997) % WINDOW_MS
                    parts[3 * side + i % 3].append(event(i, ts, 8, camera))
                    i += 1
    publish(broker.bootstrap, topics.predictions, parts)
    db_url = db_url_factory()
    env = monitor_env(broker.bootstrap, db_url, topics, CLIENT, VITMON_DETECTORS="traffic",
                      VITMON_SLICES__ATTRIBUTES='["camera_id"]', VITMON_SLICES__MAX_VALUES="3",
                      VITMON_CHECKPOINT__MAX_EVENTS="200")
    procs = [start_monitor(dict(env, VITMON_KAFKA_PARTITIONS=p), "--exit-when-idle", "3",
                           log=tmp_path / f"p{k}.log") for k, p in enumerate(["0,1,2", "3,4,5"])]
    for k, proc in enumerate(procs):
        assert proc.wait(300) == 0, (tmp_path / f"p{k}.log").read_text()[-3000:]

    admitted = {r.window_start_ms: set(r.admitted) for r in query(
        db_url, "SELECT window_start_ms, admitted FROM slice_admissions")}
    assert sorted(admitted) == [T0 + w * WINDOW_MS for w in range(4)]
    rows = query(db_url, "SELECT kafka_partition, window_start_ms, "
                         "prediction_attrs(attr_ids)->>'camera_id' AS cam, "
                         "prediction_slices(slice_ids) AS slices FROM predictions")
    assert len(rows) == i
    seen: dict[tuple[int, int], set[str]] = {}
    for r in rows:
        camera_slice = next(s for s in r.slices if s.startswith("camera_id="))
        want = r.cam if r.cam in admitted[r.window_start_ms] else OTHER
        assert camera_slice == f"camera_id={want}", r
        seen.setdefault((r.kafka_partition // 3, r.window_start_ms), set()).add(want)
    for w, values in admitted.items():  # both processes sliced every window, by that one set
        assert len(values) == 3
        assert seen[(0, w)] - {OTHER} and seen[(1, w)] - {OTHER}


def test_a_junk_burst_ages_out_with_its_window():
    """Misra-Gries keeps the heavy values through 2,000 distinct junk ids; the next window
    admits the cameras, then a window without the junk admits the same."""
    burst = add({}, {f"junk-{i}": 1 for i in range(2_000)}, capacity=12)
    sketch = add(burst, {f"cam-{c}": 40 + c for c in range(6)}, capacity=12)
    assert admit(sketch, k=3, min_volume=2) == ["cam-5", "cam-4", "cam-3"]
    assert admit(burst, k=3, min_volume=2) == []  # junk alone admits nothing


def test_sketch_merge_is_order_free_within_its_error_bound():
    rng = np.random.default_rng(0)
    values = rng.zipf(1.5, 20_000) % 300
    exact = np.bincount(values, minlength=300)
    a = b = {}
    for chunk in np.array_split(values, 7):
        a = add(a, {str(v): int(n) for v, n in zip(*np.unique(chunk, return_counts=True))}, 40)
    for chunk in np.array_split(values[::-1], 3):
        b = add(b, {str(v): int(n) for v, n in zip(*np.unique(chunk, return_counts=True))}, 40)
    bound = len(values) / 41
    for sketch in (a, b):
        for v in range(300):
            assert exact[v] - bound <= sketch.get(str(v), 0) <= exact[v]
    assert admit(a, 5, 2) == admit(b, 5, 2) == [str(v) for v in np.argsort(-exact)[:5]]
