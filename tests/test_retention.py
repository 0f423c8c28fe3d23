"""Retention: expired prediction partitions are dropped whole, expired window states, findings
and rejected events deleted in batches, and nothing inside a horizon is touched."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import text

from monitor.core.retention import RetentionHook, prune
from monitor.core.settings import RetentionSettings
from monitor.store import migrate, predictions
from monitor.store.db import make_engine
from tests.support import run_cli

pytestmark = pytest.mark.integration

DAY = 86_400_000
T0 = 1_790_000_000_000 // DAY * DAY  # a UTC midnight
WM = T0 + 20 * DAY + 12 * 3_600_000  # the watermark: day 20, noon
SETTINGS = RetentionSettings(batch_size=10)  # 14 d label horizon, 7 d states, 1 y findings
LATENESS = 60_000


def _seed(engine) -> None:
    """Predictions on days 0, 6 and 7 (the label cutoff is day 6, noon) and 20; states and
    findings either side of their cutoffs; rejected events of 40 and of 1 day ago."""
    ts = np.array([T0 + i for i in range(25)] + [T0 + 6 * DAY + 3_600_000 * h for h in range(24)]
                  + [T0 + 20 * DAY + i for i in range(5)], dtype=np.int64)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE predictions, consumer_offsets, findings, window_states, "
                          "rejected_events"))
        for name in predictions.partitions(conn):
            conn.execute(text(f"DROP TABLE {name}"))
        predictions.ensure_partitions(conn, [ts])
        conn.execute(text(
            "INSERT INTO predictions (event_id, ts_ms, model, model_version, window_start_ms, "
            "pred, is_error, latency_ms, slice_ids, attr_ids, kafka_partition, kafka_offset) "
            "VALUES (:e, :t, 'm', '1', :t, 1, false, 3.0, '{}', '{}', 0, 0)"),
            [{"e": f"e{i}", "t": int(t)} for i, t in enumerate(ts)])
        conn.execute(text(
            "INSERT INTO consumer_offsets (consumer_group, topic, kafka_partition, next_offset, "
            "watermark_ms) VALUES ('vitmon', 'p', 0, 1, :w)"), {"w": WM})
        state_cut = WM - 7 * DAY - LATENESS
        ends = [state_cut - 1 - i for i in range(23)] + [state_cut, state_cut + DAY]
        conn.execute(text(
            "INSERT INTO window_states (detector, model, model_version, slice, window_start_ms, "
            "window_end_ms, detector_version, n_events, state, dirty) VALUES "
            "('traffic', 'm', '1', 'all', :e - 60000, :e, 1, 1, '\\x00', :dirty)"),
            [{"e": e, "dirty": i == 0} for i, e in enumerate(ends)])
        finding_cut = WM - 365 * DAY
        conn.execute(text(
            "INSERT INTO findings (detector, detector_version, model, model_version, slice, "
            "window_start_ms, window_end_ms, subject, status, severity, test, n, details, "
            "revision) VALUES ('traffic', 1, 'm', '1', 'all', :e - 60000, :e, '', 'ok', 'none', "
            "'', 1, '{}', 1)"), [{"e": finding_cut - 1 - i} for i in range(12)]
            + [{"e": finding_cut}, {"e": WM}])
        conn.execute(text(
            "INSERT INTO rejected_events (topic, kafka_partition, kafka_offset, reason, detail, "
            "received_at) VALUES ('p', 0, :o, 'malformed_json', '', now() - :age * interval "
            "'1 day')"), [{"o": i, "age": 40 if i < 15 else 1} for i in range(18)])


def _all(engine, sql: str) -> list:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(text(sql)).all()]


@pytest.fixture(scope="module")
def engine(fresh_db_url):
    migrate.upgrade(fresh_db_url)
    eng = make_engine(fresh_db_url)
    yield eng
    eng.dispose()


def test_prune_drops_old_partitions_and_deletes_old_rows_only(engine):
    _seed(engine)
    r = prune(engine, SETTINGS, LATENESS)
    label_cut = WM - 14 * DAY
    assert r.cutoff_ms == label_cut == T0 + 6 * DAY + 12 * 3_600_000
    day = predictions.partition_name
    assert r.dropped == [day(T0)]  # day 6 holds the cutoff: kept whole, like every later day
    assert predictions.partitions(engine.connect()) == [day(T0 + 6 * DAY), day(T0 + 20 * DAY)]
    kept = _all(engine, "SELECT ts_ms FROM predictions")
    assert len(kept) == 29 and min(kept) == T0 + 6 * DAY  # nothing inside the horizon went
    assert r.deleted == {"window_states": 22, "findings": 12, "rejected_events": 15}
    ends = _all(engine, "SELECT window_end_ms FROM window_states ORDER BY 1")
    state_cut = WM - 7 * DAY - LATENESS
    assert ends == [state_cut - 1, state_cut, state_cut + DAY]  # a dirty state waits
    assert min(_all(engine, "SELECT window_end_ms FROM findings")) == WM - 365 * DAY
    assert len(_all(engine, "SELECT kafka_offset FROM rejected_events")) == 3
    again = prune(engine, SETTINGS, LATENESS)
    assert again.dropped == [] and not any(again.deleted.values())


def test_the_hook_prunes_one_batch_per_table_per_interval_after_commit(engine):
    _seed(engine)
    now = {"t": 1000.0}
    hook = RetentionHook(engine, RetentionSettings(batch_size=10, interval_s=60), LATENESS,
                         clock=lambda: now["t"])
    hook.after_commit(None)
    hook.after_commit(None)  # within the interval: nothing more
    assert hook.last is not None and hook.last.deleted == {
        "window_states": 10, "findings": 10, "rejected_events": 10}
    now["t"] += 61
    hook.after_commit(None)
    assert hook.last.deleted == {"window_states": 10, "findings": 2, "rejected_events": 5}
    assert len(_all(engine, "SELECT 1 FROM findings")) == 2


FAR_FUTURE = 253_402_214_399_999  # 9999-12-31T23:59:59.999Z: the latest ts the decoder accepts


def test_an_event_stamped_in_the_far_future_prunes_nothing_inside_the_horizons(engine, caplog):
    """One such event raises its partition's watermark for good; counted from it, every cutoff
    would pass every partition, state and finding. The clock caps it: with the clock at WM,
    retention does exactly what the watermark WM does above, and says why."""
    _seed(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO consumer_offsets (consumer_group, topic, kafka_partition, "
                          "next_offset, watermark_ms) VALUES ('vitmon', 'p', 1, 1, :w)"),
                     {"w": FAR_FUTURE})
    hook = RetentionHook(engine, RetentionSettings(batch_size=100, interval_s=60), LATENESS,
                         wall_clock=lambda: WM / 1000)
    with caplog.at_level("WARNING", logger="monitor.core.retention"):
        hook.after_commit(None)
        hook.after_commit(None)  # within the interval: nothing, and no second warning
    r = hook.last
    assert r is not None and r.watermark_ahead_ms == FAR_FUTURE - WM
    assert r.cutoff_ms == WM - 14 * DAY and r.dropped == [predictions.partition_name(T0)]
    assert predictions.partitions(engine.connect()) == [predictions.partition_name(T0 + 6 * DAY),
                                                        predictions.partition_name(T0 + 20 * DAY)]
    assert len(_all(engine, "SELECT 1 FROM predictions")) == 29
    state_cut = WM - 7 * DAY - LATENESS
    assert _all(engine, "SELECT window_end_ms FROM window_states ORDER BY 1") == [
        state_cut - 1, state_cut, state_cut + DAY]  # the dirty one waits for its evaluation
    assert sorted(_all(engine, "SELECT window_end_ms FROM findings")) == [WM - 365 * DAY, WM]
    warnings = [m for m in caplog.messages if "retention counts back from the clock" in m]
    assert len(warnings) == 1 and f"ahead_days={(FAR_FUTURE - WM) / DAY:.1f}" in warnings[0], caplog.messages


def test_db_prune_command(engine, fresh_db_url):
    _seed(engine)
    out = run_cli({"VITMON_DATABASE_URL": fresh_db_url, "VITMON_RETENTION__BATCH_SIZE": "5",
                   "PATH": "/usr/bin:/bin"}, "db", "prune")
    assert out.returncode == 0, out.stderr
    assert f'"dropped": ["{predictions.partition_name(T0)}"]' in out.stdout, out.stdout
    assert '"findings": 12' in out.stdout
    assert len(_all(engine, "SELECT 1 FROM predictions")) == 29
