"""The pipelined step 6 (monitor.core.evaluation_pipeline), on real PostgreSQL and a real
evaluation worker: a result is written only if its state row is unchanged since it was loaded
(a merge in between, or a rolled-back checkpoint, leaves the window dirty and it is evaluated
again with the state then), and every window is looked at once. End to end, ``vitmon run``
finds with one evaluation worker exactly what it finds evaluating synchronously."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from sqlalchemy import text

from monitor.core.checkpoint_references import CheckpointReferences
from monitor.core.evaluation import WindowEvaluator
from monitor.core.evaluation_pipeline import EvaluationPipeline
from monitor.core.evaluation_pool import EvaluationPool
from monitor.core.ingest.events import encode_prediction
from monitor.core.label_settle import NOTHING_SETTLED
from monitor.core.registry import load_detectors
from monitor.devstack.synthetic import synthetic_event
from monitor.store import migrate, window_states
from monitor.store.db import make_engine
from monitor.store.keys import WindowKey
from tests.support import make_topics, monitor_env, produce, query, start_monitor

pytestmark = pytest.mark.integration

SIZE = 60_000
KEY = WindowKey("traffic", "vit", "1", "all", 0)
WATERMARK = 10 * SIZE  # window 0 is closed


@pytest.fixture
def engine(db_url_factory):
    url = db_url_factory()
    migrate.upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def detectors():
    return {d.name: d for d in load_detectors(("traffic",), {})}


def _pipeline(detectors) -> EvaluationPipeline:
    pool = EvaluationPool(detectors, 1)
    evaluator = WindowEvaluator(detectors, SIZE, 0, 0.01, 30, (), 2.0, 0, None,
                                lambda _step: None, pool)
    return EvaluationPipeline(evaluator, pool)


def _merge(conn, detectors, traffic, n: int, seed: int) -> None:
    det = detectors["traffic"]
    delta = det.observe(det.empty(), traffic.batch(np.random.default_rng(seed), n))
    window_states.merge_deltas(conn, detectors, {KEY: delta}, {KEY: n}, SIZE)


def _step(conn, pipe: EvaluationPipeline):
    return pipe.step(conn, WATERMARK, False, CheckpointReferences(None, conn), NOTHING_SETTLED)


def _done(pipe: EvaluationPipeline) -> None:
    deadline = time.monotonic() + 60  # a bound on a hang, not a performance assertion
    while not pipe.ready():
        assert time.monotonic() < deadline, "the evaluation worker never answered"
        time.sleep(0.02)


def _stored(engine) -> tuple[list, bool]:
    with engine.connect() as conn:
        findings = conn.execute(text(
            "SELECT window_start_ms, subject, n, revision FROM findings "
            "WHERE detector = 'traffic' ORDER BY 1, 2")).all()
        dirty = conn.execute(text("SELECT dirty FROM window_states")).scalar_one()
    return [tuple(r) for r in findings], dirty


def test_a_merge_between_submit_and_finish_makes_the_result_stale(engine, detectors, traffic):
    pipe = _pipeline(detectors)
    try:
        with engine.begin() as conn:
            _merge(conn, detectors, traffic, 200, 1)
        with engine.begin() as conn:
            assert _step(conn, pipe) == ([], True)  # submitted, not waited for
        assert pipe.in_flight()
        with engine.begin() as conn:  # a late event merges into the window in flight
            _merge(conn, detectors, traffic, 100, 2)
        _done(pipe)
        with engine.begin() as conn:
            found, pending = _step(conn, pipe)
        # the 200-event result is dropped, the window stays dirty and is sent again
        assert found == [] and pending and pipe.in_flight()
        assert _stored(engine) == ([], True)
        _done(pipe)
        with engine.begin() as conn:
            found, pending = _step(conn, pipe)
        assert [(k, f.n) for k, f in found] == [(KEY, 300)] and not pending
        # its first look (revision 1), on the state with the late events
        assert _stored(engine) == ([(0, "", 300, 1)], False)
    finally:
        pipe.pool.close()


def test_a_rolled_back_checkpoint_after_submit_is_evaluated_again_once(engine, detectors,
                                                                      traffic):
    """The checkpoint that submitted rolls back (abandoned, or a database error before its
    commit): the states it had merged were never committed, so their results are stale when the
    retry merges them again; and after a restart (a new pool) nothing is looked at twice."""
    pipe = _pipeline(detectors)
    try:
        with engine.connect() as conn:
            tx = conn.begin()
            _merge(conn, detectors, traffic, 200, 1)
            assert _step(conn, pipe) == ([], True)
            tx.rollback()
        _done(pipe)
        with engine.begin() as conn:  # the retry: the same records, merged again
            _merge(conn, detectors, traffic, 200, 1)
            found, pending = _step(conn, pipe)  # finish (stale: dropped), then submit again
        assert found == [] and pending and pipe.in_flight()
        # crash: the process (and its worker) is gone with the evaluation in flight
    finally:
        pipe.pool.close()
    assert _stored(engine) == ([], True)
    restarted = _pipeline(detectors)
    try:
        with engine.begin() as conn:
            assert _step(conn, restarted) == ([], True)
        _done(restarted)
        with engine.begin() as conn:
            found, pending = _step(conn, restarted)
        assert [(k, f.n) for k, f in found] == [(KEY, 200)] and not pending
        assert _stored(engine) == ([(0, "", 200, 1)], False)  # one look, no duplicate
        with engine.begin() as conn:
            assert _step(conn, restarted) == ([], False)  # nothing left, nothing in flight
    finally:
        restarted.pool.close()


def _ordered_stream(n: int) -> list[tuple[bytes | None, bytes]]:
    """Predictions in event-time order (each partition too): no window changes after the
    watermark closed it, so each is evaluated once however the checkpoints fall."""
    rng = np.random.default_rng(21)
    events = [synthetic_event(i, rng, t0_ms=1_767_225_600_000, span_ms=12 * SIZE, dim=16,
                              n_attrs=3, versions=("1.0",), b64=True) for i in range(n)]
    events.sort(key=lambda e: e["ts"])
    return [(None, encode_prediction(e)) for e in events]


def test_one_worker_finds_exactly_what_synchronous_evaluation_finds(
        broker, db_url_factory, topic_names, tmp_path):
    messages = _ordered_stream(6_000)
    sql = ("SELECT detector, model_version, slice, window_start_ms, subject, status, severity, "
           "test, score, threshold, p_value, n, details, revision FROM findings "
           "ORDER BY detector, model_version, slice, window_start_ms, subject")
    runs = {}
    for workers in ("0", "1"):
        # one partition: windows close one after another as it is read (with several, the
        # slowest one holds them all until the end, however the reads fall)
        topics = make_topics(topic_names, "confluent-kafka", broker.bootstrap, partitions=1)
        produce("confluent-kafka", broker.bootstrap, topics.predictions, messages)
        db_url = db_url_factory()
        env = monitor_env(broker.bootstrap, db_url, topics, "confluent-kafka",
                          VITMON_KAFKA_PARTITIONS="0", VITMON_CHECKPOINT__EVALUATE_WORKERS=workers,
                          VITMON_KAFKA__POLL_MAX_RECORDS="500", VITMON_CHECKPOINT__MAX_EVENTS="500",
                          VITMON_ALERTS__RULES="[]")
        log = tmp_path / f"workers{workers}.log"
        proc = start_monitor(env, "--exit-when-idle", "2", log=log)
        assert proc.wait(600) == 0, log.read_text()[-3000:]
        runs[workers] = query(db_url, sql)
        written = re.findall(r"checkpoint committed .* findings=(\d+)", log.read_text())
        # findings written by several checkpoints, not all by the final flush
        assert sum(int(n) > 0 for n in written) >= 3, written
        # --exit-when-idle evaluated every window before exiting
        assert query(db_url, "SELECT count(*) AS n FROM window_states WHERE dirty")[0].n == 0
    sync, piped = runs["0"], runs["1"]
    windows = {r.window_start_ms for r in sync}
    assert len(windows) >= 12 and len(sync) > 100
    # one look per window, nothing re-evaluated (but fairness, a label decision: its decisive
    # look comes at the final flush, which has read every label there is)
    assert all(r.revision == 1 for r in sync if r.detector != "fairness"), sorted(
        {(r.detector, r.slice, r.window_start_ms, r.revision) for r in sync if r.revision != 1})
    assert [_rounded(tuple(r)) for r in piped] == [_rounded(tuple(r)) for r in sync]


def _rounded(value):
    """Floats to 10 significant digits, all the way down: the two runs' checkpoints fall at
    other events, so states are merged in another order (a mean's last bits differ)."""
    if isinstance(value, float):
        return float(f"{value:.10g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_rounded(v) for v in value)
    return value
