"""A running monitor evaluates the windows the watermark closes, without waiting to be idle.

The stream starts with versions the monitor has never seen, so its first events are parked
until the checkpoint admits the version (issue 13); their event time must still move the
watermark, or nothing is evaluated until ``--exit-when-idle`` flushes (found in the On-call
OOM test and the 16-hour stationary run)."""

from __future__ import annotations

import time

import pytest

from monitor.devstack.synthetic import synthetic_stream
from tests.support import backlogged, query, start_monitor

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
