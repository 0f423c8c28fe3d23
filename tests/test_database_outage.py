"""PostgreSQL stopped for 15 s mid-stream: the consumer waits, retries with backoff, catches up,
and the counts are still exact. Uses a PostgreSQL server of its own so it can stop it."""

from __future__ import annotations

import time

import pytest

from monitor.devstack.postgres import EmbeddedPostgres
from monitor.devstack.synthetic import synthetic_stream
from monitor.store.db import create_database
from tests.support import make_topics, monitor_env, produce, start_monitor, window_counts

pytestmark = pytest.mark.integration
#: Longer than tests.support's group timeouts (session 6 s, max poll interval 10 s), so the
#: consumer must stay in its group through the outage, and several retries at the 2 s cap
#: (VITMON_DATABASE__RETRY_MAX_S); it was 30 s, which showed nothing more.
OUTAGE_S = 15


def test_postgres_down_15s_mid_stream_then_counts_exact(broker, topic_names, tmp_path):
    client = "confluent-kafka"
    pg = EmbeddedPostgres(tmp_path / "pgdata").start()
    try:
        db_url = create_database(pg.url, "outage")
        topics = make_topics(topic_names, client, broker.bootstrap)
        messages, truth, _ = synthetic_stream(20_000, seed=21)
        half = len(messages) // 2
        produce(client, broker.bootstrap, topics.predictions, messages[:half])
        env = monitor_env(broker.bootstrap, db_url, topics, client,
                          VITMON_CHECKPOINT__MAX_EVENTS="2000",
                          VITMON_CHECKPOINT__INTERVAL_S="0.5")
        log = tmp_path / "monitor.log"
        # it cannot exit while a checkpoint retries (busy) nor before it committed to the log
        # end, so 3 s of idleness only has to outlast the test's pg.stop() after the first commit
        proc = start_monitor(env, "--exit-when-idle", "3", log=log)
        deadline = time.monotonic() + 120
        while "checkpoint committed" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "checkpoint committed" in log.read_text(), log.read_text()[-3000:]

        pg.stop()
        # The rest of the stream arrives while the database is down.
        produce(client, broker.bootstrap, topics.predictions, messages[half:])
        time.sleep(OUTAGE_S)
        assert proc.poll() is None, "the consumer must keep running while PostgreSQL is down"
        text = log.read_text()
        assert "database unavailable, waiting" in text, text[-3000:]
        retries = text.count("database unavailable, waiting")
        pg.start()

        assert proc.wait(300) == 0, log.read_text()[-3000:]
        assert window_counts(db_url) == truth
        # Backoff, not a busy loop: 15 s of waiting with delays doubling to 2 s is ~9 attempts
        # (the bound is the 40 of a 30 s outage, scaled)
        assert 3 <= retries <= 20, retries
    finally:
        pg.stop()


def test_a_deadlock_on_the_drivers_own_cursor_is_retried_like_one_through_sqlalchemy():
    """Two processes' checkpoints can deadlock on window_states (one merging, one locking dirty
    states to evaluate); PostgreSQL aborts one, which must retry, not exit. Statements on the
    driver's cursor raise psycopg's error, not SQLAlchemy's."""
    import psycopg
    from sqlalchemy.exc import DBAPIError

    from monitor.store.db import is_transient

    raw = psycopg.errors.DeadlockDetected("deadlock detected")
    assert raw.sqlstate == "40P01" and is_transient(raw)
    assert is_transient(DBAPIError("SELECT 1", {}, raw))
    assert not is_transient(psycopg.errors.UniqueViolation("duplicate key"))
    assert not is_transient(ValueError("not a database error"))
