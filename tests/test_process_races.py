"""What two `vitmon run` processes can do to each other at the same instant, on a real
PostgreSQL with two connections (as two processes would): a label and its prediction
checkpointed at once join exactly once; two checkpoints opening the same alert both commit;
retention dropping a day partition while a checkpoint ensures it; an event re-sent with a
new ``ts`` counted once; and events stored by another process while a checkpoint observes them
observed once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pytest
from sqlalchemy import Engine, text

from monitor.alerting.engine import AlertHook
from monitor.alerting.settings import AlertSettings
from monitor.contract import Batch, Finding, Severity, Status
from monitor.core.background_insert import insert_and_observe
from monitor.core.checkpoint import CheckpointResult
from monitor.core.checkpoint_references import CheckpointReferences
from monitor.core.ingest.decode import decode_labels
from monitor.core.ingest.events import encode_label
from monitor.core.ingest.records import Record
from monitor.core.label_join import LabelJoin
from monitor.core.stages import StageClock
from monitor.core.windows import WindowAssigner, window_start
from monitor.store import predictions
from monitor.store.keys import WindowKey
from monitor.store.terms import Terms
from monitor.testing import synthetic_batch
from slices import SliceCatalog, dimensions
from tests.detector_support import RowsSeen

pytestmark = pytest.mark.integration
T0 = 1_767_225_600_000  # synthetic_batch's first event time (2026-01-01)
WINDOW_MS = 300_000


@pytest.fixture(scope="module")
def engine(migrated_engine: Engine) -> Engine:
    return migrated_engine


def _batch(n: int, seed: int, t0_ms: int = T0) -> Batch:
    b = synthetic_batch(n=n, seed=seed, t0_ms=t0_ms)
    b.extras["_partition"] = np.zeros(n, dtype=np.int64)
    b.extras["_offset"] = np.arange(n, dtype=np.int64)
    return b


def _insert(conn, batch: Batch, terms: Terms) -> list[str]:
    """Step 3 of a checkpoint: the event ids actually inserted."""
    predictions.ensure_partitions(conn, [batch.ts_ms])
    keep = predictions.insert_new(conn, batch, window_start(batch.ts_ms, WINDOW_MS), [], terms)
    return batch.event_id[keep].tolist()


def _labels(event_ids: list[str], label: int = 3):
    return decode_labels([Record("labels", 0, i, None, encode_label(e, label, T0), -1)
                          for i, e in enumerate(event_ids)])


def _in_thread(engine: Engine, work: Callable) -> tuple[threading.Thread, dict]:
    """Run ``work(conn)`` in its own transaction on another thread (another process)."""
    out: dict = {}

    def run() -> None:
        try:
            with engine.begin() as conn:
                out["value"] = work(conn)
        except Exception as exc:  # noqa: BLE001 - the test asserts on it
            out["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    return t, out


def _blocked_or_done(engine: Engine, t: threading.Thread, timeout_s: float = 30) -> None:
    """Wait until the other thread has finished, or waits on a lock held by this test's open
    transaction (so the test can commit it and see what the other does next)."""
    deadline = time.monotonic() + timeout_s
    with engine.connect() as conn:
        while t.is_alive() and time.monotonic() < deadline:
            waiting = conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")).scalar()
            conn.rollback()  # pg_stat_activity is read once per transaction: look afresh
            if waiting:
                return
            time.sleep(0.05)
    assert not t.is_alive(), "the other transaction neither finished nor waited on a lock"


@pytest.mark.parametrize("first", ["prediction", "label"])
def test_a_label_and_its_prediction_checkpointed_at_once_join_exactly_once(engine, first):
    """READ COMMITTED alone: each reads the other's table before the other commits, and the
    pair is never joined (label_counts would miss it forever)."""
    batch = _batch(1, seed=100 if first == "prediction" else 101)
    eid = batch.event_id[0]
    with engine.begin() as conn:  # the day's partition exists (creating it locks the table)
        predictions.ensure_partitions(conn, [batch.ts_ms])
    pred_side, label_side = LabelJoin([], True, Terms()), LabelJoin([], True, Terms())

    def predict(conn) -> list:
        new = _insert(conn, batch, pred_side.terms)
        return pred_side.join(conn, new, [])[1]

    def label(conn) -> list:
        return label_side.join(conn, [], [_labels([eid])])[1]

    mine, theirs = (predict, label) if first == "prediction" else (label, predict)
    with engine.connect() as conn:
        tx = conn.begin()
        joined_here = mine(conn)
        t, out = _in_thread(engine, theirs)
        _blocked_or_done(engine, t)
        tx.commit()
    t.join(30)
    assert "error" not in out, out.get("error")
    joined = joined_here + out["value"]
    assert [(r["event_id"], r["label"], r["weight"]) for r in joined] == [(eid, 3, 1)]


def test_two_processes_opening_the_same_alert_both_commit(engine):
    """Both find no open alert and insert one: the second used to fail on the open
    fingerprint's unique index (23505, not retried: the process stopped)."""
    key = WindowKey("embedding_drift", "vit", "race", "all", T0)
    found = [(key, Finding("embedding_drift", 1, Status.ALERT, severity=Severity.TICKET,
                           score=9.0, threshold=2.0, n=40))]
    a, b = (AlertHook(AlertSettings(), "http://ui:8501", window_ms=WINDOW_MS) for _ in range(2))
    with engine.connect() as conn:
        tx = conn.begin()
        a.before_commit(conn, CheckpointResult(findings=found))
        t, out = _in_thread(engine, lambda c: b.before_commit(c, CheckpointResult(findings=found)))
        _blocked_or_done(engine, t)
        tx.commit()
    t.join(30)
    assert "error" not in out, out.get("error")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT state FROM alerts WHERE labels->>'model_version' = "
                                 "'race'")).all()
    assert len(rows) == 1


def test_a_checkpoint_ensuring_a_partition_that_retention_drops_meanwhile(engine):
    """The checkpoint looked (the partition exists), retention dropped it before the
    checkpoint's lock: the checkpoint's insert used to fail (no partition for the row)."""
    day = T0 - 40 * 86_400_000
    with engine.begin() as conn:
        _insert(conn, _batch(3, seed=102, t0_ms=day), Terms())
    with engine.connect() as conn:
        tx = conn.begin()
        dropped = predictions.drop_partitions_before(conn, day + 86_400_000)
        assert predictions.partition_name(day // 86_400_000 * 86_400_000) in dropped
        t, out = _in_thread(engine, lambda c: _insert(c, _batch(2, seed=103, t0_ms=day), Terms()))
        _blocked_or_done(engine, t)
        tx.commit()
    t.join(30)
    assert "error" not in out, out.get("error")
    assert len(out["value"]) == 2


def test_an_event_re_sent_with_a_new_ts_counts_once(engine):
    terms = Terms()
    first = _batch(3, seed=104)
    again = _batch(3, seed=104, t0_ms=T0 + 3_600_000)  # same event ids, an hour later
    with engine.begin() as conn:
        assert len(_insert(conn, first, terms)) == 3
    with engine.begin() as conn:
        assert _insert(conn, again, terms) == []
        rows = predictions.join_rows(conn, first.event_id.tolist(), terms)
    assert sorted(r["event_id"] for r in rows) == sorted(first.event_id.tolist())
    assert {r["ts_ms"] for r in rows} == set(first.ts_ms.tolist())


def test_the_same_events_stored_by_two_processes_at_once_count_once(engine):
    """Neither sees the other's rows before it commits: the second's COPY waits on the first's
    primary key entries and fails when it commits; from its savepoint the second then skips
    what the first stored, and its transaction goes on."""
    batch = _batch(4, seed=105)
    with engine.begin() as conn:  # the day's partition exists (creating it locks the table)
        predictions.ensure_partitions(conn, [batch.ts_ms])
    with engine.connect() as conn:
        tx = conn.begin()
        assert len(_insert(conn, batch, Terms())) == 4
        t, out = _in_thread(engine, lambda c: (_insert(c, batch, Terms()),
                                               c.execute(text("SELECT 1")).scalar()))
        _blocked_or_done(engine, t)
        tx.commit()
    t.join(30)
    assert "error" not in out, out.get("error")
    assert out["value"] == ([], 1)
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM predictions WHERE event_id = ANY(:e)"),
                         {"e": batch.event_id.tolist()}).scalar()
    assert n == 4


def test_events_another_process_stores_while_a_checkpoint_observes_are_observed_once(engine):
    """A checkpoint observes the rows its probe found new while its copy runs on another
    thread; when another transaction stored some of them meanwhile, the copy skips those and the
    checkpoint observes again from the rows actually stored: each event in one window state."""
    batch = _batch(5, seed=106)
    theirs = batch.take(np.array([1, 3]))
    assigner = WindowAssigner([RowsSeen()], dimensions(attributes=()), SliceCatalog(), WINDOW_MS)
    with engine.begin() as conn:
        predictions.ensure_partitions(conn, [batch.ts_ms])

    def checkpoint(conn):
        sliced = [(batch, assigner.slice_labels(batch))]
        return insert_and_observe(conn, sliced, assigner, CheckpointReferences(None, None),
                                  Terms(), StageClock())

    with engine.connect() as conn:
        tx = conn.begin()
        assert len(_insert(conn, theirs, Terms())) == 2
        t, out = _in_thread(engine, checkpoint)
        _blocked_or_done(engine, t)
        tx.commit()
    t.join(30)
    assert "error" not in out, out.get("error")
    deltas, stored = out["value"]
    mine = [batch.event_id[i] for i in (0, 2, 4)]
    assert [b.event_id.tolist() for b, _ in stored] == [mine]
    assert [(k.slice, v) for k, v in deltas.states.items()] == [("all", tuple(mine))]
    assert sum(deltas.counts.values()) == 3
