"""Replicas of `vitmon run` share a 6-partition topic through Kafka's consumer-group protocol
(issue 15), against the real embedded broker and real PostgreSQL, with both clients. One
scenario per client, on one data set produced in three parts:

1. two processes, same settings, no partition list: each processes part of the stream (its own
   /metrics), together once (<= 1.2x), both ready on /readyz and live on /healthz;
2. one is paused (SIGSTOP) past its session timeout: the other claims its partitions; resumed
   (SIGCONT), it commits nothing more and its log says it was fenced;
3. the other is SIGKILLed mid-stream and a third joins: its partitions move within 30 s;
4. every count equals the ground truth (what one uninterrupted process gives, as
   test_exactly_once shows), and the Kafka group holds the same offsets (for lag tools).
"""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import time

import pytest

from monitor.devstack.processes import free_port
from monitor.devstack.synthetic import synthetic_stream
from monitor.store import migrate
from tests.support import http_get, make_topics, monitor_env, produce, query, start_monitor, window_counts

pytestmark = pytest.mark.integration
CLIENTS = ["confluent-kafka", "kafka-python"]
PARTITIONS = 6
SESSION_S = 6  # tests.support.GROUP_TIMEOUTS


@pytest.fixture(scope="module")
def stream():
    """One data set for both clients: messages, ground truth, rejected reasons. Keyed by a hash
    of the message (as by event_id: a re-sent event lands on the same partition), so the six
    partitions get about the same traffic (null keys are sticky per producer batch)."""
    messages, truth, reasons = synthetic_stream(9_000, seed=15, malformed_fraction=0.01)
    return ([(hashlib.blake2b(v, digest_size=8).digest(), v) for _, v in messages], truth,
            reasons)


def _events(port: int) -> float:
    """Events this process committed, all outcomes (vitmon_events_total on its /metrics)."""
    _, text = http_get(port, "/metrics")
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("vitmon_events_total{") and 'topic="' in line
               and ".pred" in line)


def _offsets(db: str, topic: str) -> dict[int, tuple[int, str]]:
    rows = query(db, "SELECT kafka_partition, next_offset, owner FROM consumer_offsets "
                     "WHERE topic = :t", t=topic)
    return {r.kafka_partition: (r.next_offset, r.owner) for r in rows}


def _wait(what: str, cond, timeout_s: float, logs=(), state=lambda: "") -> float:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout_s:
            tails = "\n".join(p.read_text()[-1500:] for p in logs)
            raise AssertionError(f"{what}: not within {timeout_s}s\n{state()}\n{tails}")
        time.sleep(0.5)
    return time.monotonic() - t0


def _owner(proc) -> str:
    return f"{socket.gethostname()}:{proc.pid}"


@pytest.mark.parametrize("client", CLIENTS)
def test_group_shares_moves_and_fences(client, stream, broker, db_url_factory, topic_names,
                                       tmp_path):
    messages, truth, reasons = stream
    topics = make_topics(topic_names, client, broker.bootstrap, partitions=PARTITIONS)
    parts = [messages[:3000], messages[3000:6000], messages[6000:]]
    produce(client, broker.bootstrap, topics.predictions, parts[0])
    db = db_url_factory()
    migrate.upgrade(db)  # before the processes start: the test reads the offsets table
    env = monitor_env(broker.bootstrap, db, topics, client, VITMON_CHECKPOINT__MAX_EVENTS="500")
    procs, logs = {}, []

    def start(name: str):
        port = free_port()
        logs.append(tmp_path / f"{name}.log")
        procs[name] = (start_monitor({**env, "VITMON_METRICS_PORT": str(port)}, log=logs[-1]),
                       port)
        return procs[name]

    def state() -> str:
        pids = {name: p.pid for name, (p, _) in procs.items()}
        return f"pids {pids} offsets {_offsets(db, topics.predictions)}"

    def committed() -> int:
        return sum(o for o, _ in _offsets(db, topics.predictions).values())

    try:
        (a, port_a), (b, port_b) = start("a"), start("b")
        # 1. two processes share the partitions; together they read the stream about once
        _wait("both assigned, both committed, and the first part committed",
              lambda: committed() == len(parts[0]) and
              {o for _, o in _offsets(db, topics.predictions).values()} ==
              {_owner(a), _owner(b)} and _events(port_a) > 0 and _events(port_b) > 0,
              120, logs, state)
        ea, eb = _events(port_a), _events(port_b)
        assert ea + eb <= 1.2 * len(parts[0])
        for port in (port_a, port_b):
            assert http_get(port, "/healthz")[0] == 200
            code, body = http_get(port, "/readyz")
            assert code == 200 and json.loads(body)["partitions"] > 0, body

        # 2. a zombie: A paused past its session timeout while B takes over its partitions
        produce(client, broker.bootstrap, topics.predictions, parts[1])
        a.send_signal(signal.SIGSTOP)
        _wait("B claims every partition", lambda: {
            o for _, o in _offsets(db, topics.predictions).values()} == {_owner(b)},
              SESSION_S + 60, logs, state)
        a.send_signal(signal.SIGCONT)
        _wait("second part committed", lambda: committed() == len(parts[0]) + len(parts[1]),
              120, logs, state)
        _wait("A says it was fenced", lambda: "fenced" in logs[0].read_text(), 30, logs, state)

        # 3. B killed mid-stream, C joins: B's partitions move within 30 s
        produce(client, broker.bootstrap, topics.predictions, parts[2])
        _wait("B reads the third part", lambda: committed() > len(parts[0]) + len(parts[1]),
              60, logs, state)
        b.send_signal(signal.SIGKILL)
        b.wait(10)
        c, port_c = start("c")
        moved = _wait("B's partitions move", lambda: _owner(b) not in {
            o for _, o in _offsets(db, topics.predictions).values()}, 30, logs, state)
        _wait("everything committed", lambda: committed() == len(messages), 120, logs, state)
        assert a.poll() is None and c.poll() is None
        print(f"partitions moved {moved:.1f} s after the SIGKILL")

        # 4. exact counts; the Kafka group mirrors the offsets for lag tools
        assert window_counts(db) == truth
        assert query(db, "SELECT count(*) AS n FROM rejected_events")[0].n == len(reasons)
        _wait("the Kafka group holds the committed offsets",
              lambda: _group_offsets(broker.bootstrap, env["VITMON_KAFKA__GROUP"],
                                     topics.predictions) == len(messages), 30, logs, state)
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
        for proc, _ in procs.values():
            proc.wait(30)


def _group_offsets(bootstrap: str, group: str, topic: str) -> int:
    """Sum of the group's committed offsets on ``topic``, as kafka-consumer-groups shows them."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
        return sum(max(tp.offset, 0) for tp in got)
    finally:
        c.close()
