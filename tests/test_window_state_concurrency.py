"""Two processes writing the same window state at the same moment merge, never overwrite; and a
state another process dirtied after a checkpoint locked its dirty rows stays dirty (evaluated by
the next checkpoint, never skipped). Real PostgreSQL, two connections, as two processes would."""

from __future__ import annotations

import threading
import time

import pytest

from detectors.traffic import TrafficStats
from monitor.store import window_states
from monitor.store.keys import WindowKey
from monitor.testing import synthetic_batch

pytestmark = pytest.mark.integration
DET = TrafficStats()
DETS = {DET.name: DET}
KEY = WindowKey("traffic", "vit", "1.0", "all", 60_000)


@pytest.fixture(scope="module")
def engine(migrated_engine):
    return migrated_engine


def _delta(n: int, seed: int):
    return DET.observe(DET.empty(), synthetic_batch(n=n, seed=seed))


def _merge(conn, key: WindowKey, n: int, seed: int) -> None:
    window_states.merge_deltas(conn, DETS, {key: _delta(n, seed)}, {key: n}, 60_000)


def _stored(engine, key: WindowKey):
    with engine.connect() as conn:
        (s,) = window_states.load_states(conn, DETS, keys=[key])
        return s.n_events, s.state.n


@pytest.mark.parametrize("existing", [False, True], ids=["new-key", "existing-key"])
def test_concurrent_merges_of_one_key_add_up(engine, existing):
    key = WindowKey(KEY.detector, KEY.model, KEY.model_version, f"s{existing}", KEY.window_start_ms)
    before = 0
    if existing:
        with engine.begin() as conn:
            _merge(conn, key, 7, 0)
        before = 7
    first = engine.connect()
    tx = first.begin()
    _merge(first, key, 30, 1)  # holds the row (or the pending insert) until it commits
    done = threading.Event()

    def second() -> None:
        with engine.begin() as conn:
            _merge(conn, key, 50, 2)
        done.set()

    t = threading.Thread(target=second)
    t.start()
    time.sleep(0.5)
    assert not done.is_set()  # the second writer waits for the first: it does not overwrite
    tx.commit()
    first.close()
    t.join(10)
    assert done.is_set()
    assert _stored(engine, key) == (before + 80, before + 80)


def test_state_dirtied_after_the_lock_stays_dirty(engine):
    late = WindowKey(KEY.detector, KEY.model, KEY.model_version, "late", KEY.window_start_ms)
    with engine.begin() as conn:  # everything evaluated
        dirty = window_states.load_states(conn, DETS, dirty=True, lock=True)
        window_states.mark_evaluated(conn, None, [s.key for s in dirty], list(DETS))
    with engine.connect() as a:
        with a.begin():
            dirty = window_states.load_states(a, DETS, dirty=True, lock=True)
            assert dirty == []
            with engine.begin() as b:  # another process merges a new state meanwhile
                _merge(b, late, 5, 3)
            window_states.mark_evaluated(a, None, [s.key for s in dirty], list(DETS))
    with engine.connect() as conn:
        still = window_states.load_states(conn, DETS, dirty=True)
    assert [s.key for s in still] == [late]
