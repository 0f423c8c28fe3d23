"""``vitmon reference capture --file``: raw event JSONL (what a user dumps from the topic) and the
simulator's message JSONL give the same reference; a garbage line is one clear error line that
names the line number, never a traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import orjson
import pytest

from monitor.app.config import load_settings
from monitor.core.ingest.events import LABELS_TOPIC, PREDICTIONS_TOPIC, encode_label, encode_prediction
from monitor.core.ingest.jsonl import JsonlError, Message, envelope, read_messages, read_records
from monitor.devstack.synthetic import synthetic_event
from monitor.reports.reference_capture import capture
from tests.support import run_cli

MODEL, VERSION = "vit-tiny", "1.0"
T0 = 1_767_225_600_000


def traffic(n: int = 400) -> list[tuple[str, bytes]]:
    """(topic, message) of ``n`` predictions of one version, a label for every other one."""
    rng = np.random.default_rng(11)
    out = []
    for i in range(n):
        event = synthetic_event(i, rng, t0_ms=T0, span_ms=600_000, dim=16, n_attrs=2,
                                versions=(VERSION,), b64=i % 2 == 0)
        out.append((PREDICTIONS_TOPIC, encode_prediction(event)))
        if i % 2 == 0 and event["status"] == "ok":
            label = event["pred"] if i % 3 else (event["pred"] + 1) % 10  # 2/3 right
            out.append((LABELS_TOPIC, encode_label(event["event_id"], label, event["ts"])))
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("capture")
    messages = traffic()
    raw, simulated = root / "dump.jsonl", root / "simulated.jsonl"
    raw.write_bytes(b"".join(value + b"\n" for _, value in messages))
    simulated.write_bytes(b"".join(envelope(topic, None, value) for topic, value in messages))
    return {"raw": raw, "simulated": simulated}


def summary(captured) -> tuple:
    p = captured.profile
    return (captured.n_events, captured.n_labelled, sorted(p["numeric"]),
            p["numeric"]["latency_ms"]["counts"].tolist(), p["embedding"]["dim"],
            p["performance"]["accuracy"])


def test_raw_events_and_simulator_messages_give_the_same_reference(files):
    settings = load_settings(None, env={})
    from_raw = capture(settings, MODEL, VERSION, file=files["raw"])
    from_sim = capture(settings, MODEL, VERSION, file=files["simulated"])
    assert from_raw.n_events > 350 and from_raw.n_labelled >= 50
    assert summary(from_raw) == summary(from_sim)
    assert (from_raw.source, from_sim.source) == ("file:dump.jsonl", "file:simulated.jsonl")


def test_one_reader_for_both_formats_keeps_bytes_and_topics(files):
    raw = list(read_messages(files["raw"]))
    simulated = list(read_messages(files["simulated"]))
    assert raw == simulated  # same topics (raw: from each event's schema), same exact bytes
    assert {m.topic for m in raw} == {PREDICTIONS_TOPIC, LABELS_TOPIC}
    records = list(read_records(files["raw"], "p.topic", "l.topic"))
    assert [r.offset for r in records[:3]] == [0, 1, 2]
    assert {r.topic for r in records} == {"p.topic", "l.topic"}


@pytest.mark.parametrize("line, reason", [
    (b"{not json", "not JSON"),
    (b"[1, 2]", "expected a JSON object, got list"),
    (b'{"event_id": "e1"}', 'neither an event (no "schema") nor a message'),
    (b'{"topic": "vit.predictions", "key": 3, "value": "{}"}', '"key" must be a string or null'),
    (b'{"topic": "vit.predictions", "key": null, "value_b64": "%%%"}', '"value_b64" is not base64'),
])
def test_a_bad_line_is_named_by_its_number(tmp_path, line, reason):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(encode_prediction({"event_id": "ok"}) + b"\n\n" + line + b"\n")
    with pytest.raises(JsonlError) as info:
        list(read_messages(path))
    assert str(info.value).startswith(f"bad.jsonl line 3: {reason}")
    assert info.value.line == 3 and "\n" not in str(info.value)


def test_an_envelope_with_an_event_object_as_value_is_read_as_its_json(tmp_path):
    path = tmp_path / "objects.jsonl"
    path.write_bytes(orjson.dumps({"topic": "vit.labels", "key": "e1", "value": {"label": 1}}))
    assert list(read_messages(path)) == [Message("vit.labels", b"e1", b'{"label":1}')]


def test_cli_captures_raw_events_and_rejects_garbage_in_one_line(files, fresh_db_url, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("VITMON_")}
    env["VITMON_DATABASE_URL"] = fresh_db_url
    done = run_cli(env, "reference", "capture", "--model", MODEL, "--version", VERSION,
                   "--file", str(files["raw"]), "--embedding-sample", "100", timeout=300)
    assert done.returncode == 0, done.stderr
    stored = json.loads(done.stdout)
    assert stored["active"] and stored["n_events"] > 350 and stored["embedding_dim"] == 16

    garbage = tmp_path / "dump.jsonl"
    lines = files["raw"].read_bytes().splitlines(keepends=True)
    garbage.write_bytes(b"".join(lines[:4]) + b"oops, not an event\n" + b"".join(lines[4:]))
    bad = run_cli(env, "reference", "capture", "--model", MODEL, "--version", VERSION,
                  "--file", str(garbage), timeout=300)
    assert bad.returncode == 1
    assert bad.stderr.startswith("vitmon: dump.jsonl line 5: not JSON"), bad.stderr
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_slice_samples_leave_out_the_rows_the_version_basis_was_fitted_on(tmp_path):
    """Slices are tested on the version's PCA basis; its fit rows are not like fresh traffic on
    it, so a slice sample holding them alarms on stationary traffic (tests/test_embedding_sketch
    shows the alarm)."""
    dump = tmp_path / "dump.jsonl"
    dump.write_bytes(b"".join(value + b"\n" for _, value in traffic(1500)))
    settings = load_settings(None, env={"VITMON_SLICES__ATTRIBUTES": '["a0"]'})
    profile = capture(settings, MODEL, VERSION, file=dump).profile
    fit_ids = set(profile["embedding"]["pca_fit_ids"].tolist())
    assert len(fit_ids) >= 100
    assert not fit_ids & set(profile["embedding"]["sample_ids"].tolist())
    slices = [s for s in profile["slices"].values() if "embedding" in s]
    assert slices
    for sub in slices:
        ids = set(sub["embedding"]["sample_ids"].tolist())
        assert ids and not ids & fit_ids
