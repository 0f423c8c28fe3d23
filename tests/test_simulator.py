"""The ViT traffic simulator: accuracy, incidents, determinism, the v1 contract and the manifest.

Streams are written with ``--out`` (the same bytes the Kafka path publishes, see
``test_simulator_kafka.py``) and checked with the monitor's own decoder, plus figures computed
here from the published events and labels.
"""

from __future__ import annotations

import argparse
import hashlib
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest

from monitor.core.ingest.decode import decode_labels, decode_predictions, parse_ts
from monitor.core.ingest.jsonl import read_messages
from simulator.cli import add_arguments, run

START = "2026-11-01T00:00:00Z"


class Stream:
    """A simulated run read back from its JSONL file, plus its manifest."""

    def __init__(self, out: Path) -> None:
        self.messages = list(read_messages(out))
        self.manifest: dict[str, Any] = orjson.loads(out.with_suffix(".manifest.json").read_bytes())
        bad = {m["sha256"] for m in self.manifest["malformed"]}
        self.malformed = [v for t, _, v in self.messages if hashlib.sha256(v).hexdigest() in bad]
        self.valid = [(t, k, v) for t, k, v in self.messages
                      if hashlib.sha256(v).hexdigest() not in bad]
        self.events = [orjson.loads(v) for t, _, v in self.valid if t.endswith("predictions")]
        self.labels = [orjson.loads(v) for t, _, v in self.valid if t.endswith("labels")]
        self.by_id = {e["event_id"]: e for e in self.events}
        self.final_label = {lab["event_id"]: lab["label"] for lab in self.labels}  # last wins

    def accuracy(self, keep=lambda e: True) -> tuple[float, int]:
        """Label-based accuracy of ok events selected by ``keep``, and its sample size."""
        right = [self.by_id[i]["pred"] == y for i, y in self.final_label.items()
                 if self.by_id[i]["status"] == "ok" and keep(self.by_id[i])]
        return float(np.mean(right)), len(right)


def simulate(out: Path, scenario: str, rate: float, duration: float, *extra: str) -> Stream:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--scenario", scenario, "--rate", str(rate), "--duration",
                              str(duration), "--start", START, "--out", str(out),
                              "--no-progress", *extra])
    assert run(args) == 0
    return Stream(out)


def records(stream: Stream, topic_suffix: str) -> list[SimpleNamespace]:
    return [SimpleNamespace(topic=t, partition=0, offset=i, key=k, value=v, timestamp_ms=0)
            for i, (t, k, v) in enumerate(stream.messages) if t.endswith(topic_suffix)]


@pytest.fixture(scope="module")
def steady(tmp_path_factory: pytest.TempPathFactory) -> Stream:
    return simulate(tmp_path_factory.mktemp("sim") / "steady.jsonl", "steady", 4, 7200)


@pytest.fixture(scope="module")
def firmware(tmp_path_factory: pytest.TempPathFactory) -> Stream:
    return simulate(tmp_path_factory.mktemp("sim") / "fw.jsonl", "camera-firmware", 5, 7200)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Stream:
    # 6 h at a low rate reaches every incident of the demo scenario quickly.
    return simulate(tmp_path_factory.mktemp("sim") / "mixed.jsonl", "mixed", 0.2, 21600,
                    "--seed", "4")


def test_steady_accuracy_from_labels_is_at_least_90_percent(steady: Stream) -> None:
    accuracy, n = steady.accuracy()
    print(f"\nsteady: label-based accuracy {accuracy:.4f} over {n} labelled events")
    assert n > 10_000 and accuracy >= 0.90
    assert steady.manifest["accuracy"]["all"] >= 0.90


def test_camera_firmware_hits_only_the_affected_camera(firmware: Stream) -> None:
    incident = firmware.manifest["incidents"][0]
    camera = incident["slice"]["camera_id"]
    after = lambda e: parse_ts(e["ts"]) >= incident["start_ms"]
    print(f"\ncamera-firmware ({camera} from {incident['start']}): accuracy before -> after")
    drops = {}
    for cam in firmware.manifest["attributes"]["camera_id"]:
        before, n0 = firmware.accuracy(lambda e, c=cam: e["attrs"]["camera_id"] == c
                                       and not after(e))
        later, n1 = firmware.accuracy(lambda e, c=cam: e["attrs"]["camera_id"] == c and after(e))
        noise = 4 * np.sqrt(before * (1 - before) / n0 + later * (1 - later) / n1)
        drops[cam] = (before - later, noise)
        print(f"  {cam}: {before:.3f} (n={n0}) -> {later:.3f} (n={n1}), drop "
              f"{100 * (before - later):+.1f} points (noise band {100 * noise:.1f})")
    assert drops[camera][0] >= 0.10
    for cam, (drop, noise) in drops.items():
        if cam != camera:
            assert abs(drop) <= noise, cam


def test_camera_firmware_moves_image_statistics_of_that_camera(firmware: Stream) -> None:
    incident = firmware.manifest["incidents"][0]
    rows = [e for e in firmware.events
            if e["status"] == "ok" and e["attrs"]["camera_id"] == incident["slice"]["camera_id"]]
    before = [e["image"] for e in rows if parse_ts(e["ts"]) < incident["start_ms"]]
    after = [e["image"] for e in rows if parse_ts(e["ts"]) >= incident["start_ms"]]
    mean = lambda imgs, k: float(np.mean([i[k] for i in imgs]))
    assert mean(after, "brightness") > mean(before, "brightness") + 0.2
    assert mean(after, "contrast") < mean(before, "contrast") - 0.05
    assert {i["width"] for i in before} != {i["width"] for i in after}


def test_same_seed_gives_a_byte_identical_stream(mixed: Stream, tmp_path: Path) -> None:
    again = simulate(tmp_path / "again.jsonl", "mixed", 0.2, 21600, "--seed", "4")
    assert again.messages == mixed.messages
    one = simulate(tmp_path / "one.jsonl", "steady", 2, 60, "--seed", "1")
    assert one.messages != simulate(tmp_path / "two.jsonl", "steady", 2, 60, "--seed", "2").messages


def test_every_valid_event_passes_the_v1_decoder(mixed: Stream) -> None:
    dims: dict[str, int] = {}
    decoded = decode_predictions(records(mixed, "predictions"), dims)
    rejected = {hashlib.sha256(r.value).hexdigest(): r.reason for r in decoded.rejected}
    assert set(rejected) == {m["sha256"] for m in mixed.manifest["malformed"]}
    assert decoded.n_accepted == len(mixed.events)
    assert dims == {"vit-tiny-digits": 192}
    batch = decoded.batches["vit-tiny-digits"]
    assert batch.embedding.shape[1] == 192 and batch.probs.shape[1] == 10
    labels = decode_labels(records(mixed, "labels"))
    assert not labels.rejected and len(labels) == len(mixed.labels)
    print("\nmalformed kind -> decoder reason:", sorted({
        (m["kind"], rejected[m["sha256"]]) for m in mixed.manifest["malformed"]}))


def test_embeddings_have_the_configured_dimension_in_both_formats(tmp_path: Path) -> None:
    listed = simulate(tmp_path / "list.jsonl", "steady", 2, 60, "--embedding-format", "list")
    ok = [e for e in listed.events if e["status"] == "ok"]
    assert ok and all(len(e["embedding"]) == 192 for e in ok)
    assert listed.manifest["embedding"] == {"dim": 192, "format": "list", "dtype": None}


def test_manifest_matches_what_was_published(mixed: Stream) -> None:
    m, counts = mixed.manifest, mixed.manifest["counts"]
    ids = Counter(e["event_id"] for e in mixed.events)
    assert counts["messages"]["predictions_topic"] == len(records(mixed, "predictions"))
    assert counts["messages"]["labels_topic"] == len(mixed.labels) == counts["labels"]["published"]
    assert counts["predictions"]["published"] == len(ids)
    assert sorted(i for i, n in ids.items() for _ in range(n - 1)) == sorted(m["duplicates"])
    unique = list(mixed.by_id.values())
    assert counts["predictions"]["by_version"] == dict(Counter(e["model_version"] for e in unique))
    assert counts["predictions"]["by_error_code"] == dict(
        Counter(e["error_code"] for e in unique if e["status"] == "error"))
    assert counts["labels"]["events_labelled"] == len(mixed.final_label)
    assert counts["malformed"]["total"] == len(mixed.malformed) == len(m["malformed"])
    assert len(counts["malformed"]["by_kind"]) >= 8
    ts = [parse_ts(e["ts"]) for e in unique]
    assert (min(ts), max(ts)) == (m["event_time"]["min_ts_ms"], m["event_time"]["max_ts_ms"])
    assert m["start_ms"] <= min(ts) and max(ts) < m["end_ms"]
    assert [i["kind"] for i in m["incidents"]] == ["camera-firmware", "latency-spike",
                                                   "canary-regression", "bad-input"]
    canary = [e for e in unique if e["model_version"] == "2026.11.2"]
    window = m["incidents"][2]
    assert canary and all(window["start_ms"] <= parse_ts(e["ts"]) < window["end_ms"] + 1
                          for e in canary)


def test_labels_are_late_duplicated_and_out_of_order(steady: Stream) -> None:
    delays = np.array([(lab["ts"] - parse_ts(steady.by_id[lab["event_id"]]["ts"])) / 1000
                       for lab in steady.labels])
    repeats = Counter(lab["event_id"] for lab in steady.labels)
    print(f"\nlabel delay quantiles (s): {np.quantile(delays, [0.05, 0.5, 0.95]).round(0)}; "
          f"{(delays < 0).sum()} before their prediction; "
          f"{sum(n > 1 for n in repeats.values())} twice")
    assert (delays < 0).any() and (delays < 3600).mean() > 0.5 and (delays > 3600).any()
    assert any(n > 1 for n in repeats.values())
    first_seen: dict[tuple[str, str], int] = {}  # (topic, event_id) -> position in the stream
    for position, (topic, _, value) in enumerate(steady.valid):
        first_seen.setdefault((topic, orjson.loads(value)["event_id"]), position)
    assert any(first_seen["vit.labels", i] < first_seen["vit.predictions", i] for i in repeats)
    first_wins = {}
    for lab in steady.labels:
        first_wins.setdefault(lab["event_id"], lab["label"])
    truth_agree = lambda labels: np.mean([steady.by_id[i]["pred"] == y for i, y in labels.items()])
    assert truth_agree(steady.final_label) > truth_agree(first_wins)  # corrections come last
    ts = [parse_ts(e["ts"]) for e in steady.events]
    # buffered cameras: event time goes backwards now and then
    assert any(b < a for a, b in zip(ts, ts[1:], strict=False))


def test_attributes_and_infra_fields_are_realistic(steady: Stream) -> None:
    events = steady.events
    attrs = steady.manifest["attributes"]
    for key, values in attrs.items():
        assert {e["attrs"][key] for e in events} == set(values), key
    latency = np.array([e["latency_ms"] for e in events])
    print(f"\nlatency ms p50 {np.median(latency):.1f} p99 {np.quantile(latency, 0.99):.1f} "
          f"max {latency.max():.0f}; > 250 ms: {(latency > 250).mean():.4f}")
    assert 10 < np.median(latency) < 60 and (latency > 250).mean() < 0.005
    assert any(e["cold_start"] for e in events)
    assert {type(e["ts"]) for e in events} == {int, str}  # both forms of the contract
    batch = np.array([e["batch_size"] for e in events])
    gpu = np.array(["gpu_util" in e for e in events])
    assert np.median(latency[(batch >= 16) & gpu]) > np.median(latency[(batch == 1) & gpu])


@pytest.mark.parametrize("scenario", ["latency-spike", "slow-burn", "canary-regression",
                                      "fairness-gap", "gradual-drift", "label-delay"])
def test_each_incident_produces_its_signal(scenario: str, tmp_path: Path) -> None:
    duration = {"slow-burn": 86400, "label-delay": 86400}.get(scenario, 7200)
    stream = simulate(tmp_path / "s.jsonl", scenario, 3000 / duration, duration)
    incident = stream.manifest["incidents"][0]
    inside = lambda e: incident["start_ms"] <= parse_ts(e["ts"]) < incident["end_ms"]
    events = [e for e in stream.events if e["status"] == "ok" or "error_code" in e]
    ins, outs = [e for e in events if inside(e)], [e for e in events if not inside(e)]
    if scenario == "latency-spike":
        region = lambda es: [e["latency_ms"] for e in es
                             if e["attrs"]["region"] == incident["slice"]["region"]]
        slow_in, slow_out = (np.mean(np.array(region(es)) > 250) for es in (ins, outs))
        figures = f"us-east > 250 ms: {slow_in:.3f} inside vs {slow_out:.4f} outside"
        assert slow_in > 14.4 * 0.01 > 10 * slow_out
    elif scenario == "slow-burn":
        err_in, err_out = (np.mean([e["status"] == "error" for e in es]) for es in (ins, outs))
        figures = f"error rate {err_in:.4f} inside vs {err_out:.4f} outside"
        assert 0.005 < err_in < 0.03 and err_out < 0.005
    elif scenario == "canary-regression":
        acc = stream.manifest["accuracy"]
        share = np.mean([e["model_version"] == "2026.11.2" for e in ins])
        figures = f"canary share {share:.3f}, accuracy {acc['2026.11.2']} vs {acc['2026.11.1']}"
        assert 0.07 < share < 0.13 and acc["2026.11.1"] - acc["2026.11.2"] >= 0.10
    elif scenario == "fairness-gap":
        a, _ = stream.accuracy(lambda e: inside(e) and e["attrs"]["group"] == "A")
        b, _ = stream.accuracy(lambda e: inside(e) and e["attrs"]["group"] == "B")
        figures = f"accuracy group A {a:.3f} vs group B {b:.3f}"
        assert a - b >= 0.08
    elif scenario == "gradual-drift":
        ok = [e for e in ins if e["status"] == "ok"]
        quarters = np.array_split(np.array([e["image"]["brightness"] for e in ok]), 4)
        means = [float(q.mean()) for q in quarters]
        figures = f"brightness by quarter of the drift: {np.round(means, 3)}"
        assert all(a > b for a, b in zip(means, means[1:], strict=False))
    else:  # label-delay: events of the window get their labels only after it closes
        label_ts = {lab["event_id"]: lab["ts"] for lab in stream.labels}
        held = [label_ts[e["event_id"]] >= incident["end_ms"] for e in ins
                if e["event_id"] in label_ts]
        figures = f"{np.mean(held):.3f} of the window's labels arrive after it"
        assert held and all(held)
    print(f"\n{scenario}: {figures}")


def test_bad_input_covers_many_malformed_kinds(tmp_path: Path) -> None:
    stream = simulate(tmp_path / "bad.jsonl", "bad-input", 10, 360)
    kinds = stream.manifest["counts"]["malformed"]["by_kind"]
    assert len(kinds) >= 12 and "oversized" in kinds
    big = [m for m in stream.manifest["malformed"] if m["kind"] == "oversized"]
    assert all(m["bytes"] > 2**20 for m in big)
    ids = [m["id"] for m in stream.manifest["malformed"]]
    assert len(set(ids)) == len(ids)


def test_cli_help_and_one_line_errors(capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    parser = argparse.ArgumentParser(prog="vitmon simulate")
    add_arguments(parser)
    assert "examples:" in parser.format_help() and "camera-firmware" in parser.format_help()
    monkeypatch.delenv("VITMON_KAFKA_BOOTSTRAP", raising=False)
    assert run(parser.parse_args(["--bootstrap", ""])) == 2
    assert run(parser.parse_args(["--start", "someday", "--out", "x.jsonl"])) == 2
    assert run(parser.parse_args(["--rate", "-1", "--out", "x.jsonl"])) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("vitmon simulate: error:") for line in lines)
