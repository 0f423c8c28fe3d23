"""SIGTERM with a 200k-event backlog: ``vitmon run`` stops within 10 s (the checkpoint in flight
is abandoned and rolls back), and a restarted run's counts equal the ground truth, i.e. an
uninterrupted run's. With an evaluation worker (``checkpoint.evaluate_workers``) and a decode
worker (``kafka.decode_workers``), no child process outlives it."""

from __future__ import annotations

import re
import signal
import time
from collections import Counter
from pathlib import Path

import numpy as np
import orjson
import pytest

from tests.support import backlogged, start_monitor, status_json, window_counts

pytestmark = [pytest.mark.integration, pytest.mark.serial]  # a stop deadline: alone on the machine
N = 200_000
WINDOW_MS = 60_000


def _backlog(n: int, seed: int = 3) -> tuple[list[tuple[None, bytes]], Counter]:
    """``n`` small valid events over 10 one-minute windows, and per-window counts (vectorised:
    the test's time goes into the consumer, not into making events)."""
    rng = np.random.default_rng(seed)
    ts = 1_767_225_600_000 + rng.integers(0, 10 * WINDOW_MS, n)
    version = np.where(rng.random(n) < 0.5, "1.0", "1.1")
    lat, emb = rng.lognormal(3, 0.5, n).round(2), rng.normal(size=(n, 8)).round(3)
    attr = rng.integers(0, 5, (n, 2))
    messages = [(None, orjson.dumps({
        "schema": "vit.prediction/v1", "event_id": f"s-{i}", "ts": int(ts[i]), "model": "m",
        "model_version": str(version[i]), "latency_ms": float(lat[i]), "status": "ok",
        "pred": int(attr[i, 0]), "confidence": 0.9, "embedding": emb[i].tolist(),
        "attrs": {"a0": f"v{attr[i, 0]}", "a1": f"v{attr[i, 1]}"}})) for i in range(n)]
    truth = Counter(zip(["m"] * n, version.tolist(), (ts // WINDOW_MS * WINDOW_MS).tolist()))
    return messages, truth


def test_sigterm_with_a_200k_backlog_stops_within_10s_and_the_restart_is_exact(
        broker, db_url_factory, topic_names, tmp_path):
    client = "confluent-kafka"
    messages, truth = _backlog(N)
    topics, db_url, env = backlogged(broker, topic_names, db_url_factory, client, messages,
                                     VITMON_DETECTORS="traffic,feature_drift",
                                     VITMON_CHECKPOINT__EVALUATE_WORKERS="1",
                                     VITMON_KAFKA__DECODE_WORKERS="1")
    log = tmp_path / "monitor.log"
    proc = start_monitor(env, log=log)
    deadline = time.monotonic() + 120
    while "checkpoint committed" not in log.read_text() and time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.2)
    time.sleep(1.0)  # into the next checkpoint
    assert proc.poll() is None, "the backlog was consumed before the signal"
    kids = _children(proc.pid)
    assert kids, "no evaluation worker (VITMON_CHECKPOINT__EVALUATE_WORKERS=1)"
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    took = time.monotonic() - t0
    committed = sum(map(int, re.findall(r"checkpoint committed accepted=(\d+)", log.read_text())))
    assert took <= 10.0, f"SIGTERM took {took:.1f} s:\n{log.read_text()[-3000:]}"
    assert committed < N, "nothing was left to abandon: the test proves nothing"
    end = time.monotonic() + 5  # multiprocessing's resource tracker exits on its pipe's EOF
    while any(map(_running, kids)) and time.monotonic() < end:
        time.sleep(0.1)
    assert not [k for k in kids if _running(k)], "a child of vitmon run outlived it"

    # The restart only counts (traffic): what is checked is that nothing was lost or doubled.
    final = start_monitor({**env, "VITMON_DETECTORS": "traffic"}, "--exit-when-idle", "1",
                          log=log)
    assert final.wait(600) == 0, log.read_text()[-3000:]
    assert window_counts(db_url) == dict(truth)  # nothing lost, nothing counted twice
    st = status_json(env)
    assert sum(m["accepted"] for m in st["models"]) == N
    parts = [p for p in st["partitions"] if p["topic"] == topics.predictions]
    assert sum(p["committed_offset"] for p in parts) == N


def _children(pid: int) -> list[int]:
    return [int(k) for t in Path(f"/proc/{pid}/task").iterdir()
            for k in (t / "children").read_text().split()]


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's exit may wait for a reaper)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
