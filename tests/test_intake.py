"""Issue 13, end to end against the real broker and PostgreSQL: bad or unlucky input never
blinds the monitor. The embedding dimension comes from evidence (a consensus), not from the
first event; slices are the top-K values by volume, so a burst of junk ids takes none; caps
bound the models and versions a producer can create (``vitmon dlq replay``:
tests/test_dlq_replay.py)."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime, timezone

import numpy as np
import pytest
from confluent_kafka import Producer
from sqlalchemy import create_engine

from monitor.core.ingest.events import REASON_HEADER, embedding_to_b64, encode_prediction
from monitor.core.ingest.intake import FIRST_POLL_RECORDS
from monitor.reports.status import status
from tests.support import make_topics, monitor_env, query, run_cli, start_monitor
from tests.test_exactly_once import _read_all
from ui.queries import ops

pytestmark = pytest.mark.integration
CLIENT = "confluent-kafka"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a window boundary
WINDOW_MS = 60_000
CAMERAS = [f"cam-{i}" for i in range(6)]


def event(i: int, ts: int, dim: int, camera: str, model: str = "vit", version: str = "1",
          prefix: str = "ev") -> bytes:
    vec = np.random.default_rng(i).normal(size=dim).astype(np.float32)
    b64, dtype = embedding_to_b64(vec, "f16")
    return encode_prediction({
        "event_id": f"{prefix}-{i}", "ts": ts, "model": model, "model_version": version,
        "latency_ms": 10.0 + i % 7, "status": "ok", "pred": i % 3,
        "probs": [0.2, 0.3, 0.5], "embedding_b64": b64, "embedding_dtype": dtype,
        "attrs": {"camera_id": camera}})


def publish(bootstrap: str, topic: str, by_partition: dict[int, list[bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for partition, values in by_partition.items():
        for value in values:
            while True:
                try:
                    producer.produce(topic, value, partition=partition)
                    break
                except BufferError:
                    producer.poll(0.05)
    assert producer.flush(60) == 0


def config(tmp_path, models: dict) -> str:
    """A settings file with ``models`` (model names need not be valid env variable names)."""
    path = tmp_path / "vitmon.yaml"
    path.write_text(json.dumps({"models": models}))  # JSON is YAML
    return str(path)


def consume(env: dict, log) -> None:
    """Run the monitor over what the test published: 1 s of idleness only times the flush (the
    idle exit also needs the committed offsets at the log end, asked of the broker)."""
    proc = start_monitor(env, "--exit-when-idle", "1", log=log)
    assert proc.wait(300) == 0, log.read_text()[-3000:]


def test_bad_first_event_on_every_partition_and_a_junk_burst_blind_nothing(broker, db_url_factory,
                                                                           topic_names, tmp_path):
    """The first message of each of 6 partitions has 17 values instead of 64, then a burst of
    2,000 events with distinct junk camera ids, then 6 real cameras over 4 windows: every valid
    event is accepted, the 6 bad ones are rejected, and each camera gets its own slices."""
    topics = make_topics(topic_names, CLIENT, broker.bootstrap, partitions=6)
    parts: dict[int, list[bytes]] = {p: [event(90_000 + p, T0, 17, CAMERAS[p], prefix="bad")]
                                     for p in range(6)}
    for j in range(2_000):  # the junk burst, all in the first window
        parts[j % 6].append(event(50_000 + j, T0 + j * 20, 64, f"junk-{j}", prefix="junk"))
    n_real = 6_000
    for i in range(n_real):  # 1,500 per window, 250 per camera and window, in time order
        ts = T0 + i * (4 * WINDOW_MS // n_real)
        parts[i % 6].append(event(i, ts, 64, CAMERAS[(i // 6) % 6]))
    publish(broker.bootstrap, topics.predictions, parts)

    db_url = db_url_factory()
    env = monitor_env(broker.bootstrap, db_url, topics, CLIENT, VITMON_DETECTORS="traffic",
                      VITMON_SLICES__ATTRIBUTES='["camera_id"]',
                      VITMON_WINDOWS__ALLOWED_LATENESS_S="0")
    consume(env, tmp_path / "monitor.log")

    accepted = {r.event_id for r in query(db_url, "SELECT event_id FROM predictions")}
    assert len(accepted) == n_real + 2_000 and not any(e.startswith("bad-") for e in accepted)
    rejected = query(db_url, "SELECT event_id, reason FROM rejected_events")
    assert sorted(rejected) == sorted((f"bad-{90_000 + p}", "embedding_dim") for p in range(6))
    assert query(db_url, "SELECT dim, source FROM embedding_dims") == [(64, "consensus")]
    assert query(db_url, "SELECT count(*) FROM parked_events")[0][0] == 0
    # The six rejections decided in the checkpoint reached the DLQ topic too, with their reason.
    dlq = _read_all(CLIENT, broker.bootstrap, topics.dlq)
    assert Counter(dict(r.headers)[REASON_HEADER] for r in dlq) == {b"embedding_dim": 6}

    slices = query(db_url, "SELECT slice, window_start_ms, n FROM findings "
                           "WHERE detector = 'traffic' AND slice LIKE 'camera_id=%'")
    by_camera = Counter(s.slice for s in slices)
    for camera in CAMERAS:  # every window but the first is sliced from the one before
        assert by_camera[f"camera_id={camera}"] >= 3, by_camera
    assert not [s for s in slices if s.slice.startswith("camera_id=junk")]
    admitted = query(db_url, "SELECT window_start_ms, admitted FROM slice_admissions "
                             "ORDER BY window_start_ms")
    assert [sorted(a.admitted) for a in admitted[1:]] == [CAMERAS] * 3


def test_ten_thousand_versions_hit_the_caps_and_are_rejected_not_dropped(broker, db_url_factory,
                                                                        topic_names, tmp_path):
    topics = make_topics(topic_names, CLIENT, broker.bootstrap, partitions=3)
    values = [event(i, T0 + i, 8, "cam-0", version=f"v{i}", prefix="ver")
              for i in range(10_000)]
    values += [event(20_000 + m, T0, 8, "cam-0", model=f"other-{m}", prefix="mod")
               for m in range(3)]
    publish(broker.bootstrap, topics.predictions, {p: values[p::3] for p in range(3)})
    db_url = db_url_factory()
    models = {m: {"embedding_dim": 8} for m in ("vit", "other-0", "other-1", "other-2")}
    env = monitor_env(broker.bootstrap, db_url, topics, CLIENT, VITMON_DETECTORS="traffic",
                      VITMON_INTAKE__MAX_VERSIONS_PER_MODEL="5", VITMON_INTAKE__MAX_MODELS="3",
                      VITMON_CONFIG=config(tmp_path, models))
    consume(env, tmp_path / "monitor.log")

    versions = dict(query(db_url, "SELECT model, count(*) FROM model_versions GROUP BY 1"))
    assert versions.pop("vit") == 5 and list(versions.values()) == [1, 1]  # 3 models
    reasons = Counter(r.reason for r in query(db_url, "SELECT reason FROM rejected_events"))
    assert reasons == {"too_many_versions": 9_995, "too_many_models": 1}
    assert query(db_url, "SELECT count(*) FROM predictions")[0][0] == 5 + 2
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:  # `vitmon status` and the On-call page's rejections show them, counted
        shown = status(engine, "vitmon")
        with engine.connect() as conn:
            by_reason, _ = ops.rejected(conn, since=datetime(2000, 1, 1, tzinfo=timezone.utc))
    finally:
        engine.dispose()
    assert sum(m["accepted"] for m in shown["models"]) == 7
    assert shown["rejected_by_reason"] == {r.reason: r.n for r in by_reason} == reasons


def test_on_a_new_database_only_the_first_small_poll_parks(broker, db_url_factory, topic_names,
                                                           tmp_path):
    """A version with an active reference and nothing admitted yet: the first poll reads at most
    FIRST_POLL_RECORDS, which park; their checkpoint runs at once and fetching pauses until it
    commits (the version admitted, D from the reference), so every later event is decoded as
    admitted instead of parking (twice the cost) while the first checkpoint is in flight."""
    topics = make_topics(topic_names, CLIENT, broker.bootstrap, partitions=3)
    n = 30_000  # more than one full poll (kafka.poll_max_records)
    values = [event(i, T0 + i * 10, 8, CAMERAS[i % 6]) for i in range(n)]
    publish(broker.bootstrap, topics.predictions, {p: values[p::3] for p in range(3)})
    db_url = db_url_factory()
    env = monitor_env(broker.bootstrap, db_url, topics, CLIENT, VITMON_DETECTORS="traffic",
                      VITMON_SLICES__ATTRIBUTES='["camera_id"]')
    reference = tmp_path / "reference.jsonl"
    reference.write_bytes(b"\n".join(event(i, T0, 8, "cam-0", prefix="ref")
                                     for i in range(500)) + b"\n")
    done = run_cli(env, "reference", "capture", "--model", "vit", "--version", "1", "--file",
                   str(reference), timeout=300)
    assert done.returncode == 0, done.stderr
    log = tmp_path / "monitor.log"
    consume(env, log)

    commits = [(int(a), int(p)) for a, p in re.findall(
        r"checkpoint committed accepted=(\d+) .*parked=(\d+)", log.read_text())]
    assert sum(a for a, _ in commits) == n
    assert 0 < commits[0][1] == sum(p for _, p in commits) <= FIRST_POLL_RECORDS, commits
    assert query(db_url, "SELECT dim, source FROM embedding_dims") == [(8, "reference")]
    assert query(db_url, "SELECT count(*) FROM parked_events")[0][0] == 0


def test_a_canary_of_a_known_model_is_decided_at_once_and_a_new_backbone_still_waits(
        broker, db_url_factory, topic_names, tmp_path):
    """Version 1 is decided by 1,000 votes. Canary 2 sends 20 events of the same D: decided in
    its first checkpoint from the model's last D, long before the 30 s wait or the flush.
    Version 3, a new backbone with D = 32, sends 20 events: the prior does not outvote them;
    they wait as any new version does, and the flush decides them by consensus."""
    topics = make_topics(topic_names, CLIENT, broker.bootstrap, partitions=1)
    values = [event(i, T0 + i * 20, 64, CAMERAS[i % 6], version="1") for i in range(1_500)]
    values += [event(10_000 + i, T0 + 30_000 + i * 20, 64, CAMERAS[0], version="2",
                     prefix="canary") for i in range(20)]
    values += [event(20_000 + i, T0 + 31_000 + i * 20, 32, CAMERAS[1], version="3",
                     prefix="backbone") for i in range(20)]
    publish(broker.bootstrap, topics.predictions, {0: values})
    db_url = db_url_factory()
    env = monitor_env(broker.bootstrap, db_url, topics, CLIENT, VITMON_DETECTORS="traffic",
                      VITMON_INTAKE__DIM_CONSENSUS_WAIT_S="3600")
    consume(env, tmp_path / "monitor.log")

    assert query(db_url, "SELECT model_version, dim, source FROM embedding_dims "
                         "ORDER BY model_version") == [("1", 64, "consensus"),
                                                       ("2", 64, "previous_version"),
                                                       ("3", 32, "consensus")]
    by_version = dict(query(db_url, "SELECT model_version, count(*) FROM predictions "
                                    "GROUP BY 1"))
    assert by_version == {"1": 1_500, "2": 20, "3": 20}
    assert query(db_url, "SELECT count(*) FROM rejected_events")[0][0] == 0
