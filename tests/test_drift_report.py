"""`vitmon report drift`: Evidently's data drift report for one window of one slice, with the
window replayed from the real broker and the reference from PostgreSQL (sampled from its
sketches) or from the file it was captured from."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from scipy import stats

from detectors.batches import make_batch
from detectors.reference import build_reference_profile
from monitor.core.ingest.jsonl import read_messages
from monitor.errors import VitmonError
from monitor.reports import drift_report
from tests.support import make_topics, monitor_env, produce, run_cli

MODEL, VERSION = "vit-tiny-digits", "2026.11.1"
CLIENT = "confluent-kafka"


def test_rows_sampled_from_the_profile_follow_the_reference_marginals():
    rng = np.random.default_rng(3)
    n = 20_000
    skewed = rng.lognormal(3.0, 0.6, n)
    batch = make_batch(n, rng, latency_ms=skewed,
                       attrs={"region": rng.choice(["eu", "us", "ap"], n, p=[0.6, 0.3, 0.1])})
    profile = build_reference_profile([batch])
    cols = drift_report.Columns.of(profile)
    assert "latency_ms" in cols.numeric and "attrs.region" in cols.categorical
    rows = drift_report.sample_profile(profile, cols, 5000, seed=1)
    # Within-bin error is ~0.2 % of the value: far below what KS resolves at these sizes.
    assert stats.ks_2samp(rows["latency_ms"], skewed).pvalue > 0.01
    freq = {c: float(np.mean(rows["attrs.region"] == c)) for c in ("eu", "us", "ap")}
    assert freq == pytest.approx({"eu": 0.6, "us": 0.3, "ap": 0.1}, abs=0.03)


def test_a_slice_is_compared_with_its_own_reference_sub_profile():
    from detectors.feature_drift import FeatureDrift
    from detectors.testing import context

    rng = np.random.default_rng(5)
    bright = lambda mean, n: make_batch(n, rng, image={"brightness": rng.normal(mean, 0.05, n)})  # noqa: E731
    whole = build_reference_profile([bright(0.3, 3000), bright(0.6, 1000)])
    profile = {**whole, "slices": {"camera_id=cam-06": build_reference_profile(bright(0.6, 1000))}}
    det = FeatureDrift()
    window = det.observe(det.empty(), bright(0.6, 300))  # cam-06 as usual: brighter than the mix
    own = det.evaluate(window, context(profile, slice="camera_id=cam-06"))[0]
    # A slice without its own sub-profile is never judged against the whole version's mix
    # (issue 12 point 6: it alarmed for ever); it says so instead.
    other = det.evaluate(window, context(profile, slice="camera_id=cam-01"))[0]
    assert own.status.value == "ok" and other.status.value == "no_reference"


def test_a_missing_evidently_is_one_line_naming_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "evidently", None)  # import evidently -> ImportError
    with pytest.raises(VitmonError, match="needs the 'evidently' package") as info:
        drift_report._evidently()
    assert "\n" not in str(info.value)


@pytest.mark.integration
def test_report_for_the_firmware_camera_window(broker, topic_names, db_url_factory, tmp_path):
    sim = {"PATH": "/usr/bin:/bin"}
    runs = {}
    for scenario, seed, start in (("steady", 1, "2026-10-31T00:00:00Z"),
                                  ("camera-firmware", 0, "2026-11-01T00:00:00Z")):
        out = tmp_path / f"{scenario}.jsonl"
        done = run_cli(sim, "simulate", "--scenario", scenario, "--rate", "5", "--duration",
                       "600", "--start", start, "--seed", str(seed), "--out", str(out),
                       "--no-progress", timeout=300)
        assert done.returncode == 0, done.stderr
        runs[scenario] = out
    incident = json.loads(runs["camera-firmware"].with_suffix(".manifest.json").read_text()
                          )["incidents"][0]
    topics = make_topics(topic_names, CLIENT, broker.bootstrap)
    env = monitor_env(broker.bootstrap, db_url_factory(), topics, CLIENT,
                      VITMON_SLICES__ATTRIBUTES='["camera_id"]', VITMON_WINDOWS__SIZE_S="60")
    done = run_cli(env, "reference", "capture", "--model", MODEL, "--version", VERSION,
                   "--file", str(runs["steady"]), timeout=300)
    assert done.returncode == 0, done.stderr
    produce(CLIENT, broker.bootstrap, topics.predictions,
            [(k, v) for t, k, v in read_messages(runs["camera-firmware"]) if t == "vit.predictions"])

    window = str(incident["start_ms"] + 60_000)  # the first whole minute after the onset
    for name, extra in (("sampled", ()), ("file", ("--reference-file", str(runs["steady"])))):
        page = tmp_path / f"{name}.html"
        done = run_cli(env, "report", "drift", "--model", MODEL, "--version", VERSION,
                       "--slice", "camera_id=cam-03", "--window-start", window, "--out",
                       str(page), *extra, timeout=300)
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        print(f"\nreport drift ({name}): {summary}")
        # cam-03 is 15 % of 5 events/s: about 45 events in the minute, all of the camera.
        assert 20 <= summary["n_window"] <= 80
        assert summary["window_start_ms"] == int(window) - int(window) % 60_000
        assert summary["drifted_columns"] >= 3  # brightness, contrast, saturation, size, ...
        html = page.read_text()
        for marker in ("image.brightness", "image.contrast", "attrs.camera_id", "latency_ms",
                       "Dataset Drift", "Drifted Columns", "drawDashboard"):  # Evidently's
            assert marker in html, marker

    missing = run_cli(env, "report", "drift", "--model", MODEL, "--version", "0.0.0",
                      "--window-start", window, "--out", str(tmp_path / "x.html"))
    assert missing.returncode == 1 and "no active reference" in missing.stderr
