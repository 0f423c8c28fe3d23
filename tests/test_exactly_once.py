"""Exactly-once effect against the real broker and real PostgreSQL: SIGKILL the consumer at
random moments, restart it, and every count equals the ground truth."""

from __future__ import annotations

import hashlib
import random
import signal
import time
from collections import Counter
from functools import cache

import pytest

from monitor.core import kafka as kafka_io
from monitor.core.ingest.events import REASON_HEADER
from monitor.devstack.synthetic import synthetic_stream
from tests.support import make_topics, monitor_env, produce, query, start_monitor, status_json, window_counts

pytestmark = pytest.mark.integration
CLIENTS = ["confluent-kafka", "kafka-python"]


@cache
def _stream():
    """The same 50,000 events for both clients (generated once: read, never changed)."""
    return synthetic_stream(50_000, seed=7, malformed_fraction=0.02)


def _read_all(client: str, bootstrap: str, topic: str, timeout_s: float = 60):
    """Every record of ``topic``, up to the log end of each partition."""
    source = kafka_io.make_source(client, bootstrap)
    try:
        tps = [(topic, p) for p in kafka_io.partitions_for(client, bootstrap, topic)]
        source.assign({tp: 0 for tp in tps})
        got, deadline = [], time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = source.poll(10_000, 0.5)
            got += batch
            if not batch:
                ends = source.end_offsets(tps)
                last = {(r.topic, r.partition): r.offset + 1 for r in got}
                if all(last.get(tp, 0) >= end for tp, end in ends.items()):
                    break
        return got
    finally:
        source.close()


def _committed(db_url: str, topic: str) -> int:
    return query(db_url, "SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets "
                 "WHERE topic = :t", t=topic)[0][0]


@pytest.mark.parametrize("client", CLIENTS)
def test_sigkill_three_times_then_counts_are_exact(client, broker, db_url_factory, topic_names,
                                                   tmp_path):
    messages, truth, reasons = _stream()
    assert len(set(reasons.values())) >= 8  # at least 8 different kinds of bad input
    topics = make_topics(topic_names, client, broker.bootstrap)
    produce(client, broker.bootstrap, topics.predictions, messages)
    db_url = db_url_factory()
    # the killed processes' checkpoints hold at most 5,000 events (polls of 5,000): about 10 of
    # them, so each kill below lands with work committed before it and left after it
    env = monitor_env(broker.bootstrap, db_url, topics, client)
    killed_env = {**env, "VITMON_CHECKPOINT__MAX_EVENTS": "5000",
                  "VITMON_KAFKA__POLL_MAX_RECORDS": "5000"}
    log = tmp_path / "monitor.log"
    log.touch()
    rng = random.Random(11)
    done = 0
    for _ in range(3):
        # Killed in the middle of the work: after this process has committed a checkpoint of its
        # own (it holds partitions and has read from them), a random moment into the next one.
        commits = log.read_text().count("checkpoint committed")
        proc = start_monitor(killed_env, log=log)
        deadline = time.monotonic() + 120
        while log.read_text().count("checkpoint committed") == commits:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint committed in 120 s"
            time.sleep(0.05)  # polling a condition, not a timing assumption
        time.sleep(rng.uniform(0.0, 1.5))
        assert proc.poll() is None, log.read_text()[-3000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        before, done = done, _committed(db_url, topics.predictions)
        assert before < done < len(messages)  # it made progress, and left work for the next
    # every message was produced before the first start, and the idle exit also needs the
    # committed offsets at the log end (asked of the broker): 1 s of idleness only times the flush.
    # The recovery run keeps the default checkpoint size: each checkpoint evaluates every window
    # it touches (~4,400 findings), so ten small ones spent ~20 s re-evaluating the same windows
    final = start_monitor(env, "--exit-when-idle", "1", log=log)
    assert final.wait(600) == 0, log.read_text()[-3000:]

    # Per-window counts equal the ground truth exactly: nothing lost, nothing twice.
    assert window_counts(db_url) == truth

    # Every malformed event is in rejected_events, once, with its reason.
    rows = query(db_url, "SELECT raw, reason FROM rejected_events")
    stored = Counter((hashlib.sha256(r.raw).hexdigest(), r.reason) for r in rows)
    assert stored == Counter(reasons.items())

    # `vitmon status --json` agrees.
    st = status_json(env)
    by_version = Counter()
    for (_, version, _), n in truth.items():
        by_version[version] += n
    assert {m["model_version"]: m["accepted"] for m in st["models"] if m["accepted"]} == by_version
    assert st["rejected_by_reason"] == dict(Counter(reasons.values()))
    pred_parts = [p for p in st["partitions"] if p["topic"] == topics.predictions]
    assert sum(p["committed_offset"] for p in pred_parts) == len(messages)
    assert all(p["lag"] == 0 for p in pred_parts), pred_parts

    # The DLQ topic got every rejected message with its reason header (at least once).
    dlq = _read_all(client, broker.bootstrap, topics.dlq)
    seen = {hashlib.sha256(r.value).hexdigest(): dict(r.headers or []).get(REASON_HEADER)
            for r in dlq}
    assert {k: v.decode() for k, v in seen.items()} == reasons
