"""Retention: predictions past the label horizon are deleted in batches through the ts index;
everything younger, and every result, stays."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from monitor.core.retention import RetentionHook, prune
from monitor.core.settings import RetentionSettings
from monitor.store.predictions import delete_before
from tests.support import run_cli

pytestmark = pytest.mark.integration

DAY = 86_400_000
T0 = 1_790_000_000_000


def _seed(engine, n_old: int, n_new: int, watermark: int) -> None:
    rows = [{"e": f"old-{i}", "t": T0 + i} for i in range(n_old)]
    rows += [{"e": f"new-{i}", "t": T0 + 20 * DAY + i} for i in range(n_new)]
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE predictions, consumer_offsets, findings"))
        conn.execute(text(
            "INSERT INTO predictions (event_id, ts_ms, model, model_version, window_start_ms, "
            "pred, is_error, latency_ms, slices, kafka_partition, kafka_offset) VALUES "
            "(:e, :t, 'm', '1', :t, 1, false, 3.0, 'all', 0, 0)"), rows)
        conn.execute(text(
            "INSERT INTO consumer_offsets (consumer_group, topic, kafka_partition, next_offset, "
            "watermark_ms) VALUES ('vitmon', 'p', 0, 1, :w)"), {"w": watermark})
        conn.execute(text(
            "INSERT INTO findings (detector, detector_version, model, model_version, slice, "
            "window_start_ms, window_end_ms, subject, status, severity, test, n, details, "
            "revision) VALUES ('performance', 1, 'm', '1', 'all', :t, :t, '', 'ok', 'none', '', "
            "1, '{}', 1)"),
            {"t": T0})


def _count(engine, prefix: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM predictions WHERE event_id LIKE :p"),
                            {"p": f"{prefix}%"}).scalar()


@pytest.fixture(scope="module")
def engine(migrated_engine):
    return migrated_engine


def test_prune_deletes_only_past_the_horizon_in_batches(engine):
    _seed(engine, n_old=53, n_new=20, watermark=T0 + 20 * DAY)
    r = prune(engine, RetentionSettings(label_horizon_s=14 * 86_400, batch_size=10))
    assert (r.deleted, r.batches, r.cutoff_ms) == (53, 6, T0 + 6 * DAY)
    assert _count(engine, "old-") == 0 and _count(engine, "new-") == 20
    with engine.connect() as conn:  # results are not the predictions: they stay
        assert conn.execute(text("SELECT count(*) FROM findings")).scalar() == 1
    assert prune(engine, RetentionSettings(batch_size=10)).deleted == 0


def test_batch_delete_can_use_the_ts_index(engine):
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(r[0] for r in conn.execute(text(
            "EXPLAIN DELETE FROM predictions WHERE ctid = ANY(ARRAY("
            "SELECT ctid FROM predictions WHERE ts_ms < 5 LIMIT 10))")))
    assert "ix_predictions_ts" in plan, plan


def test_hook_prunes_one_batch_per_interval_inside_the_checkpoint(engine):
    _seed(engine, n_old=25, n_new=5, watermark=0)
    now = {"t": 1000.0}
    hook = RetentionHook(RetentionSettings(batch_size=10, interval_s=60), clock=lambda: now["t"])

    class Result:
        watermark_ms = T0 + 20 * DAY

    def checkpoint(rollback: bool = False) -> None:
        conn = engine.connect()
        tx = conn.begin()
        hook.before_commit(conn, Result())
        tx.rollback() if rollback else tx.commit()
        conn.close()

    checkpoint(rollback=True)  # a failed checkpoint prunes nothing
    assert _count(engine, "old-") == 25
    hook._last = float("-inf")
    checkpoint()
    checkpoint()  # within the interval: no second batch
    assert _count(engine, "old-") == 15
    now["t"] += 61
    checkpoint()
    assert _count(engine, "old-") == 5 and _count(engine, "new-") == 5
    with engine.begin() as conn:
        assert delete_before(conn, T0, 10) == 0  # nothing before the first prediction


def test_db_prune_command(engine, fresh_db_url):
    _seed(engine, n_old=12, n_new=3, watermark=T0 + 20 * DAY)
    out = run_cli({"VITMON_DATABASE_URL": fresh_db_url, "VITMON_RETENTION__BATCH_SIZE": "5",
                   "PATH": "/usr/bin:/bin"}, "db", "prune")
    assert out.returncode == 0, out.stderr
    assert '"deleted": 12' in out.stdout and '"batches": 3' in out.stdout
    assert _count(engine, "new-") == 3
