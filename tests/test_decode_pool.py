"""The decode worker (monitor.core.decode_pool, ``kafka.decode_workers``): the same decode as
in-process (batches, rejections, parked events; segments that grow), a worker that dies is a
clear error (never a hang), no process outlives close; end to end, ``vitmon run`` commits the
same counts, dead letters and findings with the worker as without it."""

from __future__ import annotations

import base64
import os
import pickle
import re
import signal
import time

import numpy as np
import orjson
import pytest

from monitor.core.decode_pool import DecodePool, DecodeWorkerLost, Gate
from monitor.core.ingest import decode
from monitor.core.ingest.events import encode_prediction
from monitor.core.ingest.records import Record
from monitor.core.settings import KafkaSettings
from monitor.devstack.synthetic import synthetic_stream
from tests.support import (
    backlogged,
    query,
    run_cli,
    start_monitor,
    status_json,
    window_counts,
)

TOPIC = "vit.predictions"
#: detectors whose verdicts test against the reference (the captured one is version 1.0's)
REFERENCE_TESTS = ("embedding_drift", "feature_drift", "prediction_drift")


def _event(i: int, version: str = "1", dim: int = 4) -> bytes:
    emb = (np.arange(dim, dtype=np.float16) + i).tobytes()
    return encode_prediction({
        "event_id": f"e{i}", "ts": 1_767_225_600_000 + i, "model": "m", "model_version": version,
        "latency_ms": 3.0, "status": "ok", "pred": i % 2, "probs": [0.25, 0.75],
        "embedding_b64": base64.b64encode(emb).decode(), "embedding_dtype": "f16",
        "attrs": {"cam": i % 3}})


def _records(n: int, dim: int = 4) -> list[Record]:
    """Valid events of versions 1 (admitted) and 2 (not: parked), a malformed one, a
    tombstone, an empty value, keys on some."""
    values: list[bytes | None] = [_event(i, "1" if i % 4 else "2", dim) for i in range(n)]
    values[3], values[5], values[8] = b"{", None, b""
    return [Record(TOPIC, i % 3, 100 + i, b"k%d" % i if i % 2 else None, v, -1)
            for i, v in enumerate(values)]


def _same(a: decode.PredictionDecode, b: decode.PredictionDecode) -> None:
    assert a.positions == b.positions
    assert pickle.dumps(a.rejected) == pickle.dumps(b.rejected)
    assert [(p.offset, p.model_version, p.dim, p.ts_ms, p.key, p.value, repr(p.row))
            for p in a.parked] == [(p.offset, p.model_version, p.dim, p.ts_ms, p.key, p.value,
                                    repr(p.row)) for p in b.parked]  # repr: NaN != NaN
    assert a.batches.keys() == b.batches.keys()
    for name, x in a.batches.items():
        y = b.batches[name]
        for f in ("event_id", "ts_ms", "model_version", "pred", "confidence", "probs",
                  "embedding", "has_embedding"):
            np.testing.assert_array_equal(getattr(x, f), getattr(y, f))
        assert x.embedding.dtype == y.embedding.dtype
        for k, v in {**x.attrs, **x.extras}.items():
            np.testing.assert_array_equal(v, {**y.attrs, **y.extras}[k])


@pytest.mark.parametrize("workers", [1, 2])
def test_the_workers_decode_exactly_what_in_process_decoding_does_in_order(workers):
    gate = {("m", "1"): 4}
    pool = DecodePool(workers)
    pool.start()
    assert len(pool.pids()) == workers
    try:
        sent = []
        # segments outgrown; 2 requests in flight per worker, answers taken in the order sent
        # (a small request after a large one is answered first by the other worker)
        for n in (40, 3000, 20, 5000, 30, 4000, 25, 2500, 60):
            if pool.full:
                _check(pool.result(), sent.pop(0), gate)
            sent.append(_records(n))
            pool.submit(sent[-1], gate)
        while pool.pending:
            _check(pool.result(), sent.pop(0), gate)
        assert not sent
    finally:
        pool.close()


def _check(got: decode.PredictionDecode, records: list[Record], gate: dict) -> None:
    _same(got, decode.decode_predictions(records, {}, gate=Gate(gate)))
    assert got.rejected and got.parked and got.batches["m"].probs.flags.writeable


def test_a_killed_worker_is_a_clear_error_not_a_hang():
    pool = DecodePool(1, poll_s=0.01)
    pool.start()
    try:
        pool.submit(_records(10), {})
        pool.result()
        (pid,) = pool.pids()
        os.kill(pid, signal.SIGTERM)  # ignored: a stop is the parent's to run
        pool.submit(_records(10), {})
        assert len(pool.result().parked) == 7
        os.kill(pid, signal.SIGKILL)
        t0 = time.monotonic()
        with pytest.raises(DecodeWorkerLost, match="decode worker is gone"):
            pool.submit(_records(10), {})
            pool.result()
        assert time.monotonic() - t0 < 30
    finally:
        pool.close()
    assert not pool.pids()


def test_decode_workers_setting_bounds():
    assert KafkaSettings().decode_workers == 1
    assert KafkaSettings(decode_workers=0).decode_workers == 0
    assert KafkaSettings(decode_workers=4).decode_workers == 4
    with pytest.raises(ValueError, match="decode_workers"):
        KafkaSettings(decode_workers=5)


def test_close_leaves_no_process_even_mid_decode():
    pool = DecodePool(2)
    pool.start()
    pool.submit(_records(2000), {("m", "1"): 4})
    pool.submit(_records(2000), {("m", "1"): 4})
    procs = list(pool._procs)
    pool.close()
    assert len(procs) == 2 and not any(p.is_alive() for p in procs) and not pool.pids()


@pytest.mark.integration
def test_vitmon_run_commits_the_same_with_the_worker_as_in_process(
        broker, db_url_factory, topic_names, tmp_path):
    """Same counts, findings, dead letters, offsets and embedding_drift states from the same
    backlog, decoded by one worker, two or in-process (malformed and invalid events included), with
    a captured reference for version 1.0: the worker projects its embeddings ahead
    (``Precomputable``) once the first checkpoint has looked the reference up."""
    messages, _, _ = synthetic_stream(20_000, seed=11, malformed_fraction=0.02)
    reference = tmp_path / "reference.jsonl"
    reference.write_bytes(b"\n".join(v for _, v in synthetic_stream(
        3_000, seed=12, malformed_fraction=0, duplicate_fraction=0, versions=("1.0",))[0]))
    # Every slice value admitted whatever the checkpoint boundaries: with a reference the
    # first checkpoint is the intake's first small poll, and the top-K decision of the first
    # window rests on its volume (monitor.core.slice_admission), which timing moves.
    allow = orjson.dumps({f"a{j}": [f"v{i}" for i in range(5)] for j in range(3)}).decode()
    results = []
    for workers in ("0", "1", "2"):
        topics, db_url, env = backlogged(broker, topic_names, db_url_factory, "confluent-kafka",
                                         messages, VITMON_KAFKA__DECODE_WORKERS=workers,
                                         VITMON_SLICES__ALLOW=allow)
        done = run_cli(env, "reference", "capture", "--model", "vit-tiny", "--version", "1.0",
                       "--file", str(reference), timeout=300)
        assert done.returncode == 0, done.stderr
        log = tmp_path / f"monitor-{workers}.log"
        proc = start_monitor(env, "--exit-when-idle", "1", log=log)  # a backlog: 1 s times the flush
        assert proc.wait(600) == 0, log.read_text()[-3000:]
        sent = re.findall(r"decode worker precomputes worker=(\d+) versions=(\d+) columns=(\d+)",
                          log.read_text())
        assert sorted(sent) == [(str(w), "1", "1") for w in range(int(workers))]  # once to each
        st = status_json(env)
        findings = query(db_url, "SELECT detector, model, model_version, slice, "
                         "window_start_ms, subject, status, n FROM findings "
                         "ORDER BY 1, 2, 3, 4, 5, 6")
        verdicts = {status for d, _, v, sl, _, _, status, _ in findings
                    if d == "embedding_drift" and v == "1.0" and sl == "all"}
        assert verdicts and "no_reference" not in verdicts  # 1.0's embeddings were projected
        # 1.0's drift verdicts test against the reference at alpha / look, and how many looks a
        # window gets depends on where checkpoints end (timing): their n is compared, like
        # every other finding's, their status only above
        findings = [f if f[2] != "1.0" or f[0] not in REFERENCE_TESTS else (*f[:6], None, f[7])
                    for f in findings]
        # null keys: the two runs' partitions differ, so no partition or offset is compared
        rejected = sorted(query(db_url, "SELECT reason, coalesce(event_id, ''), coalesce(md5(raw), '') "
                                "FROM rejected_events"))
        committed = query(db_url, "SELECT sum(next_offset) FROM consumer_offsets "
                          "WHERE topic = :t", t=topics.predictions)
        projected = query(db_url, "SELECT model_version, slice, window_start_ms, state "
                          "FROM window_states WHERE detector = 'embedding_drift' ORDER BY 1, 2, 3")
        results.append((window_counts(db_url), sorted(window_counts(db_url, "feature_drift")),
                        [(m["model"], m["accepted"]) for m in st["models"]], findings,
                        rejected, committed, projected))
    assert results[0][2] and results[0][3] and results[0][4]  # the comparison is not empty
    assert results[0] == results[1] == results[2]
