"""A running monitor evaluates the windows the watermark closes, without waiting to be idle.

The stream starts with versions the monitor has never seen, so its first events are parked
until the checkpoint admits the version (issue 13); their event time must still move the
watermark, or nothing is evaluated until ``--exit-when-idle`` flushes (found in the On-call
OOM test and the 16-hour stationary run)."""

from __future__ import annotations

import json
import time

import pytest

from monitor.devstack.synthetic import synthetic_stream
from tests.support import backlogged, make_topics, monitor_env, produce, query, start_monitor

pytestmark = pytest.mark.integration

WINDOW_MS, LATENESS_MS = 60_000, 60_000  # tests.support's window size; the default lateness


@pytest.mark.parametrize("budget_s", ["2", "0.001"])
def test_closed_windows_are_evaluated_while_running(broker, db_url_factory, topic_names,
                                                    tmp_path, budget_s):
    """With a tiny evaluation budget each checkpoint evaluates one window and leaves the rest
    for checkpoints with nothing new to read: those must still know the watermark."""
    client = "confluent-kafka"
    messages, truth, _ = synthetic_stream(6_000, seed=9, malformed_fraction=0,
                                          duplicate_fraction=0)
    topics, db_url, env = backlogged(broker, topic_names, db_url_factory, client, messages,
                                     VITMON_DETECTORS="traffic",
                                     VITMON_CHECKPOINT__EVALUATE_BUDGET_S=budget_s)
    last = max(w for (_, _, w) in truth)  # the watermark is at least the last window's start
    closed = {w for (_, _, w) in truth if w + WINDOW_MS + LATENESS_MS <= last}
    assert closed, "the stream must span windows the watermark closes"
    log = tmp_path / "monitor.log"
    proc = start_monitor(env, log=log)  # no --exit-when-idle: no final flush
    try:
        deadline = time.monotonic() + 90
        evaluated: set[int] = set()
        while time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                rows = query(db_url, "SELECT DISTINCT window_start_ms FROM findings "
                                     "WHERE detector = 'traffic'")
            except Exception:  # noqa: BLE001 - the schema is not migrated yet
                continue
            evaluated = {r.window_start_ms for r in rows}
            if closed <= evaluated:
                break
    finally:
        proc.terminate()
        assert proc.wait(30) == 0, log.read_text()[-2000:]
    assert closed <= evaluated, log.read_text()[-2000:]
    assert last not in evaluated  # its end plus the lateness is beyond the watermark


def test_an_event_stamped_in_the_far_future_does_not_move_the_watermark(
        broker, db_url_factory, topic_names, tmp_path):
    """One event at 9999-12-31 (a timestamp the decoder accepts) on a one-partition topic: it
    is accepted and stored, but the watermark stays with the rest of the stream, so windows
    still close by their lateness (the last one stays open) and the stored watermark -- read
    again after every restart, and by retention and the SLO judge -- is the stream's."""
    client, far_future = "confluent-kafka", 253_402_214_399_999
    messages, truth, _ = synthetic_stream(3_000, seed=4, malformed_fraction=0,
                                          duplicate_fraction=0)
    outlier = json.loads(messages[1_000][1])
    outlier.update(event_id="from-the-far-future", ts=far_future)
    messages = [*messages[:1_500], (None, json.dumps(outlier).encode()), *messages[1_500:]]
    topics = make_topics(topic_names, client, broker.bootstrap, partitions=1)
    produce(client, broker.bootstrap, topics.predictions, messages)
    db_url = db_url_factory()
    env = monitor_env(broker.bootstrap, db_url, topics, client, VITMON_DETECTORS="traffic")
    last = max(w for (_, _, w) in truth)
    closed = {w for (_, _, w) in truth if w + WINDOW_MS + LATENESS_MS <= last}
    log = tmp_path / "monitor.log"
    proc = start_monitor(env, log=log)  # no --exit-when-idle: a flush would evaluate all
    try:
        deadline = time.monotonic() + 90
        evaluated: set[int] = set()
        while time.monotonic() < deadline and not closed <= evaluated:
            time.sleep(0.5)
            try:
                evaluated = {r.window_start_ms for r in query(
                    db_url, "SELECT DISTINCT window_start_ms FROM findings "
                            "WHERE detector = 'traffic'")}
            except Exception:  # noqa: BLE001 - the schema is not migrated yet
                continue
    finally:
        proc.terminate()
        assert proc.wait(30) == 0, log.read_text()[-2000:]
    text_ = log.read_text()
    assert closed <= evaluated, text_[-2000:]
    assert last not in evaluated and far_future // WINDOW_MS * WINDOW_MS not in evaluated
    stored = query(db_url, "SELECT ts_ms FROM predictions WHERE event_id = 'from-the-far-future'")
    assert [r.ts_ms for r in stored] == [far_future]  # accepted: nothing is lost
    newest = max(json.loads(v)["ts"] for _, v in messages if b"from-the-far-future" not in v)
    assert [r.watermark_ms for r in query(
        db_url, "SELECT watermark_ms FROM consumer_offsets WHERE topic = :t",
        t=topics.predictions)] == [newest]
    assert text_.count("event times ahead of the clock do not move the watermark") == 1, text_
