"""Helpers for integration tests: run ``vitmon`` as a subprocess against real services."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

from monitor.core import kafka as kafka_io
from monitor.core.ingest.jsonl import read_messages

VITMON = str(Path(sys.executable).with_name("vitmon"))


GROUP_TIMEOUTS = {"VITMON_KAFKA__SESSION_TIMEOUT_S": "6", "VITMON_KAFKA__HEARTBEAT_INTERVAL_S": "1",
                  "VITMON_KAFKA__MAX_POLL_INTERVAL_S": "10"}


#: One process reading every partition of make_topics' topics (3 each) by explicit assignment
#: (``kafka.partitions``), for tests that are not about the consumer group: it starts reading
#: at once instead of after the group's first assignment, which the embedded broker holds for
#: its initial rebalance delay (3 s at every start). The group protocol has tests of its own
#: (tests/test_exactly_once.py, tests/test_partitions_and_settings.py). Not for a test whose
#: point depends on the order the topics are read in: assigned, librdkafka happened to fetch
#: the labels topic's backlog before the predictions' (tests/test_label_settle.py keeps its
#: group, where the predictions come first and each label batch is a look of its own).
ALL_PARTITIONS = {"VITMON_KAFKA_PARTITIONS": "0,1,2"}


@dataclass(frozen=True)
class Topics:
    predictions: str
    labels: str
    dlq: str


def make_topics(topic_names, client: str, bootstrap: str, partitions: int = 3) -> Topics:
    base = topic_names()
    t = Topics(f"{base}.pred", f"{base}.labels", f"{base}.dlq")
    kafka_io.create_topics(client, bootstrap, {t.predictions: partitions, t.labels: partitions,
                                               t.dlq: 1})
    return t


def produce(client: str, bootstrap: str, topic: str,
            messages: Sequence[tuple[bytes | None, bytes]]) -> None:
    sink = kafka_io.make_sink(client, bootstrap)
    try:
        for key, value in messages:
            sink.produce(topic, value, key=key)
        sink.flush(60)
    finally:
        sink.close()


def monitor_env(bootstrap: str, db_url: str, topics: Topics, client: str,
                **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VITMON_")}
    env.update({
        "VITMON_KAFKA_BOOTSTRAP": bootstrap, "VITMON_DATABASE_URL": db_url,
        "VITMON_KAFKA_CLIENT": client, "VITMON_METRICS_PORT": "0",
        "VITMON_KAFKA__PREDICTIONS_TOPIC": topics.predictions,
        "VITMON_KAFKA__LABELS_TOPIC": topics.labels, "VITMON_KAFKA__DLQ_TOPIC": topics.dlq,
        "VITMON_WINDOWS__SIZE_S": "60", "VITMON_SLICES__ATTRIBUTES": '["a0", "a1"]',
        "VITMON_DATABASE__RETRY_MAX_S": "2",
        # one consumer group per test's topics; the embedded broker holds a JoinGroup for the
        # max poll interval, so group timeouts are seconds here (production: 45 / 3 / 300 s)
        "VITMON_KAFKA__GROUP": topics.predictions.rsplit(".", 1)[0],
        **GROUP_TIMEOUTS,
    })
    env.update(extra)
    return env


def backlogged(broker, topic_names, db_url_factory, client: str,
               messages: Sequence[tuple[bytes | None, bytes]],
               **settings: str) -> tuple[Topics, str, dict[str, str]]:
    """New topics with ``messages`` already on the predictions topic (a backlog for the monitor to
    read), a new database, and the monitor's environment for both (``settings``: VITMON_* extras).
    Returns (topics, database URL, environment)."""
    topics = make_topics(topic_names, client, broker.bootstrap)
    produce(client, broker.bootstrap, topics.predictions, messages)
    db_url = db_url_factory()
    return topics, db_url, monitor_env(broker.bootstrap, db_url, topics, client, **settings)


def start_monitor(env: Mapping[str, str], *args: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen([VITMON, "run", *args], env=dict(env), stdout=log.open("ab"),
                            stderr=subprocess.STDOUT)


def run_cli(env: Mapping[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([VITMON, *args], env=dict(env), capture_output=True, text=True,
                          timeout=timeout)


def status_json(env: Mapping[str, str]) -> dict:
    out = run_cli(env, "status", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def window_counts(db_url: str, detector: str = "traffic") -> dict[tuple[str, str, int], int]:
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT model, model_version, window_start_ms, n_events FROM window_states "
                "WHERE detector = :d AND slice = 'all'"), {"d": detector}).all()
    finally:
        engine.dispose()
    return {(r.model, r.model_version, r.window_start_ms): r.n_events for r in rows}


def query(db_url: str, sql: str, **params) -> list:
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params).all())
    finally:
        engine.dispose()


PLUGIN_PKG = Path(__file__).parent / "plugin_pkg"


def install_plugin(target: Path) -> Path:
    """Install the third-party test plugin into ``target`` (put it on PYTHONPATH to load it).

    Built from a copy beside ``target``: pip builds in the source directory, and its
    ``*.egg-info`` there (on ``sys.path`` once pytest collects the plugin's module for its
    doctests) registered the plugin's detector in every later test of the same process."""
    source = target.with_name(f"{target.name}-src")
    shutil.copytree(PLUGIN_PKG, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(target), str(source)], check=True)
    return target


def http_get(port: int, path: str) -> tuple[int, str]:
    """Status and body of GET http://127.0.0.1:<port><path>; an HTTP error is an answer too."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


SIMULATE_START = "2026-11-01T00:00:00Z"
_SIMULATED: dict[tuple, tuple[Path, dict]] = {}


def simulate(tmp: Path, scenario: str, rate: float, duration: float, seed: int = 0,
             start: str = SIMULATE_START) -> tuple[Path, dict]:
    """`vitmon simulate` to a JSONL file under ``tmp`` and its manifest. The simulator is seeded
    (a byte-identical stream for the same arguments: tests/test_simulator.py), so each set of
    arguments is simulated once per session and shared by every module that asks for it
    (tests/test_drift_scenarios.py, tests/test_alert_incident_scenarios.py); callers only read
    the file. The cache lives here, not in a test module: pytest imports a test module under
    its own name (``test_drift_scenarios``), so another module importing it as
    ``tests.test_drift_scenarios`` got a second copy with a second, empty cache."""
    key = (scenario, rate, duration, seed, start)
    if key not in _SIMULATED:
        out = tmp / f"{scenario}-s{seed}.jsonl"
        done = run_cli({"PATH": "/usr/bin:/bin"}, "simulate", "--scenario", scenario, "--rate",
                       str(rate), "--duration", str(duration), "--start", start, "--seed",
                       str(seed), "--out", str(out), "--no-progress", timeout=300)
        assert done.returncode == 0, done.stderr
        _SIMULATED[key] = out, json.loads(out.with_suffix(".manifest.json").read_text())
    return _SIMULATED[key]


def publish_and_consume(env: Mapping[str, str], client: str, bootstrap: str, topics: Topics,
                 scenario: Path, log: Path) -> None:
    """Produce a simulated scenario's predictions and labels to their topics, then run the
    monitor until it is idle; fails with the log's tail if it exits badly."""
    messages = list(read_messages(scenario))
    for kind, topic in (("vit.predictions", topics.predictions), ("vit.labels", topics.labels)):
        produce(client, bootstrap, topic, [(k, v) for t, k, v in messages if t == kind])
    # everything is produced before the run, and the idle exit also needs the committed offsets
    # at the log end (asked of the broker): 1 s of idleness only times the flush
    proc = start_monitor(env, "--exit-when-idle", "1", log=log)
    assert proc.wait(900) == 0, log.read_text()[-3000:]
