"""Must-show scenarios for performance, fairness and worst slices, end to end: `vitmon simulate`
writes real ViT traffic (with its ground-truth manifest), the messages go to the real broker,
`vitmon run` consumes them into PostgreSQL, and the audit commands read the results.

Each test keeps under about two minutes of CPU: shorter runs than the scenarios' recommendation,
at the recommended rate, and windows sized so each still sees enough labelled events."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import orjson
import pytest

from detectors.performance import build_performance_profile
from monitor.core.ingest.decode import parse_ts
from monitor.core.ingest.jsonl import read_messages
from monitor.store import migrate, references
from monitor.store.db import make_engine
from tests.support import make_topics, monitor_env, produce, query, run_cli, start_monitor

pytestmark = pytest.mark.integration

START = "2026-11-01T00:00:00Z"
MODEL, VERSION = "vit-tiny-digits", "2026.11.1"
CLIENT = "confluent-kafka"


def simulate(tmp: Path, scenario: str, rate: float, duration: float) -> tuple[list, dict]:
    out = tmp / f"{scenario}.jsonl"
    done = run_cli({"PATH": "/usr/bin:/bin"}, "simulate", "--scenario", scenario, "--rate",
                   str(rate), "--duration", str(duration), "--start", START, "--seed", "0",
                   "--out", str(out), "--no-progress", timeout=300)
    assert done.returncode == 0, done.stderr
    manifest = json.loads(out.with_suffix(".manifest.json").read_text())
    return list(read_messages(out)), manifest


def consume(env: dict, tmp: Path, broker, topics, messages: list, phase: str) -> None:
    for kind, topic in (("vit.predictions", topics.predictions), ("vit.labels", topics.labels)):
        produce(CLIENT, broker.bootstrap, topic, [(k, v) for t, k, v in messages if t == kind])
    log = tmp / f"{phase}.log"  # 1 s idle: as tests.support.publish_and_consume
    proc = start_monitor(env, "--exit-when-idle", "1", log=log)
    assert proc.wait(600) == 0, log.read_text()[-3000:]


def setup(broker, topic_names, db_url_factory, **extra: str):
    topics = make_topics(topic_names, CLIENT, broker.bootstrap)
    db_url = db_url_factory()
    env = monitor_env(broker.bootstrap, db_url, topics, CLIENT, VITMON_SLICES__ATTRIBUTES="[]",
                      VITMON_WINDOWS__ALLOWED_LATENESS_S="0",
                      # Alert rules are another module's concern; these tests read findings.
                      VITMON_ALERTS__RULES="[]", **extra)
    return topics, db_url, env


def test_fairness_gap_is_reported_with_an_interval_excluding_zero(broker, topic_names,
                                                                   db_url_factory, tmp_path):
    messages, manifest = simulate(tmp_path, "fairness-gap", rate=5, duration=3600)
    incident = manifest["incidents"][0]
    topics, db_url, env = setup(broker, topic_names, db_url_factory,
                                VITMON_DETECTORS="fairness", VITMON_WINDOWS__SIZE_S="300",
                                VITMON_FAIRNESS__ATTRIBUTES='["group"]',
                                VITMON_FAIRNESS__INTERSECTIONS='[["group", "region"]]',
                                VITMON_FAIRNESS__POSITIVE_CLASSES="[3]")
    consume(env, tmp_path, broker, topics, messages, "fairness-gap")

    rows = query(db_url, "SELECT window_start_ms, status, details FROM findings WHERE "
                         "detector = 'fairness' AND slice = 'all' AND subject = 'group=B'")
    during = [r for r in rows if r.window_start_ms >= incident["start_ms"]]
    before = [r for r in rows if r.window_start_ms + 300_000 <= incident["start_ms"]]
    assert before and all(r.status != "alert" for r in before)
    # Every verdict is the window's decisive look, taken on its settled labels (here: the flush
    # that read everything), not a provisional one from however many checkpoints came first.
    assert all(r.details["labels_settled"] for r in rows)
    # Per 5-minute window group B has 100-250 labelled predictions (labels trail the run), so
    # a 12-point gap is significant in most windows but surely beyond the 5-point threshold
    # only in some; the audit over the whole incident below is where it is unambiguous.
    # On this stream (seed 0) the final labels flag 4 of the 8 incident windows at the
    # decisive look's 0.9 alpha (and 1 at 0.05 alpha, the share a look after it gets): the
    # bound holds with no margin, but every run now takes the same verdicts.
    flagged = [r for r in during if r.status in ("warn", "alert")]
    assert len(flagged) * 2 >= len(during), [r.status for r in during]
    for r in flagged:
        acc = next(c for c in r.details["comparisons"] if c["metric"] == "accuracy")
        assert acc["difference_ci"][1] < 0 and acc["significant"]

    base = ["fairness", "report", "--model", MODEL, "--version", VERSION,
            "--from", str(incident["start_ms"]), "--to", str(incident["end_ms"])]
    out = run_cli(env, *base, "--format", "csv", "--out", str(tmp_path / "audit.csv"))
    assert out.returncode == 0, out.stderr
    table = list(csv.DictReader(io.StringIO((tmp_path / "audit.csv").read_text())))
    gap = next(r for r in table if r["kind"] == "comparison" and r["group"] == "group=B"
               and r["metric"] == "accuracy")
    assert gap["reference"] == "group=A" and gap["significant"] == gap["violation"] == "True"
    assert float(gap["difference_ci_high"]) < 0 < float(gap["reference_n"])
    print(f"\nfairness-gap audit: B - A accuracy {float(gap['difference']):+.3f} "
          f"[{float(gap['difference_ci_low']):+.3f}, {float(gap['difference_ci_high']):+.3f}], "
          f"n_B={gap['n']} n_A={gap['reference_n']}; group=B flagged in {len(flagged)}/"
          f"{len(during)} incident windows "
          f"({sum(r.status == 'alert' for r in during)} alert)")
    out = run_cli(env, *base, "--format", "html", "--out", str(tmp_path / "audit.html"))
    assert out.returncode == 0, out.stderr
    page = (tmp_path / "audit.html").read_text()
    assert "group=B" in page and "significant, beyond threshold" in page and "<svg" in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")  # self-contained


def test_steady_fires_no_fairness_finding_over_100_windows(broker, topic_names, db_url_factory,
                                                            tmp_path):
    messages, _ = simulate(tmp_path, "steady", rate=5, duration=7200)
    # The detector's own parameters (the fairness-gap test above uses the older `fairness` keys).
    params = ("{fairness: {attributes: [group, customer_tier], intersections: [[group, region]], "
              "positive_classes: [3, 7]}}")
    topics, db_url, env = setup(broker, topic_names, db_url_factory, VITMON_DETECTORS="fairness",
                                VITMON_WINDOWS__SIZE_S="60", VITMON_DETECTORS__PARAMS=params)
    consume(env, tmp_path, broker, topics, messages, "steady")
    windows = query(db_url, "SELECT window_start_ms, status FROM findings WHERE "
                            "detector = 'fairness' AND slice = 'all' AND subject = ''")
    assert len(windows) >= 100
    compared = [r for r in windows if r.status != "insufficient_data"]
    assert len(compared) >= 100
    firing = query(db_url, "SELECT window_start_ms, subject, details FROM findings WHERE "
                           "detector = 'fairness' AND status = 'alert' AND subject <> ''")
    warns = query(db_url, "SELECT count(*) AS n FROM findings WHERE detector = 'fairness' "
                          "AND status = 'warn'")[0].n
    print(f"\nsteady: {len(compared)} windows compared, {len(firing)} fairness alerts, "
          f"{warns} warnings")
    assert not firing, [(r.subject, [c for c in r.details["comparisons"] if c["violation"]])
                        for r in firing]


def test_camera_firmware_worst_slice_is_the_affected_camera(broker, topic_names, db_url_factory,
                                                            tmp_path):
    messages, manifest = simulate(tmp_path, "camera-firmware", rate=5, duration=3600)
    incident = manifest["incidents"][0]
    topics, db_url, env = setup(broker, topic_names, db_url_factory,
                                VITMON_DETECTORS="traffic", VITMON_WINDOWS__SIZE_S="600")
    consume(env, tmp_path, broker, topics, messages, "camera-firmware")
    out = run_cli(env, "slices", "discover", "--model", MODEL, "--version", VERSION,
                  "--from", str(incident["start_ms"]), "--to", str(incident["end_ms"]), "--json")
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)["slices"]
    print("\ncamera-firmware worst slices: " + "; ".join(
        f"{s['rank']}. {s['slice']} error {s['error_rate']:.3f} (+{s['effect']:.3f}, n={s['n']})"
        for s in found[:5]))
    assert found and "camera_id=cam-03" in found[0]["slice"].split(",")
    stored = query(db_url, "SELECT subject, details FROM findings WHERE detector = 'worst_slice' "
                           "ORDER BY (details->>'rank')::int")
    assert [r.subject for r in stored] == [s["slice"] for s in found]


def _reference(messages: list, until_ms: int) -> dict:
    """The performance profile of the healthy start of the run (labelled predictions)."""
    preds, labels = {}, {}
    for topic, _, value in messages:
        e = orjson.loads(value)
        if topic == "vit.labels":
            labels[e["event_id"]] = e["label"]
        elif e.get("status") == "ok" and parse_ts(e["ts"]) < until_ms:
            preds[e["event_id"]] = (e["confidence"], e["pred"])
    ids = [i for i in preds if i in labels]
    conf, pred = (np.array(c) for c in zip(*(preds[i] for i in ids)))
    return build_performance_profile(conf, pred, np.array([labels[i] for i in ids]),
                                     [["all"]] * len(ids))


def test_label_delay_realised_accuracy_lands_and_the_estimate_tracks_it(broker, topic_names,
                                                                        db_url_factory, tmp_path):
    messages, manifest = simulate(tmp_path, "label-delay", rate=1, duration=4 * 3600)
    incident = manifest["incidents"][0]
    topics, db_url, env = setup(broker, topic_names, db_url_factory,
                                VITMON_DETECTORS="performance", VITMON_WINDOWS__SIZE_S="600")
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        references.store(conn, MODEL, VERSION,
                         {"performance": _reference(messages, incident["start_ms"])},
                         "test:healthy-start", 0, {})
    engine.dispose()
    # Phase 1 ends just after the incident: its windows have predictions but no labels yet.
    cut = incident["end_ms"] + 600_000
    ts = [parse_ts(orjson.loads(v)["ts"]) for _, _, v in messages]
    consume(env, tmp_path, broker, topics, [m for m, t in zip(messages, ts) if t < cut], "early")
    sql = ("SELECT window_start_ms, status, revision, details FROM findings WHERE "
           "detector = 'performance' AND slice = 'all' AND subject = '' ORDER BY 1")
    inside = lambda rows: [r for r in rows if incident["start_ms"] <= r.window_start_ms  # noqa: E731
                           and r.window_start_ms + 600_000 <= incident["end_ms"]]
    early = inside(query(db_url, sql))
    assert early and all(r.status == "insufficient_data" for r in early)
    assert all(r.details["estimated_accuracy"] > 0.8 for r in early)
    consume(env, tmp_path, broker, topics, [m for m, t in zip(messages, ts) if t >= cut], "late")
    final = query(db_url, sql)
    late = inside(final)
    assert all(r.details["accuracy"] is not None and r.revision > 1 for r in late)
    assert all(r.status == "ok" for r in late)  # accuracy unchanged: never a regression
    # The join, whatever the order: the simulator publishes 1 % of labels before their
    # prediction, 4 % twice (the first often wrong: the last wins) and never labels 8 %.
    preds, labels = {}, {}
    for topic, _, value in messages:
        e = orjson.loads(value)
        if topic == "vit.labels":
            labels[e["event_id"]] = e["label"]
        elif e.get("status") == "ok":
            preds[e["event_id"]] = (parse_ts(e["ts"]) // 600_000 * 600_000, e["pred"])
    expect: dict[int, list[int]] = {}
    for event_id, label in labels.items():
        window, pred = preds[event_id]
        counts = expect.setdefault(window, [0, 0])
        counts[0] += 1
        counts[1] += int(pred == label)
    assert {r.window_start_ms: [r.details["labelled"], r.details["correct"]] for r in final
            if r.details["labelled"]} == expect
    judged = [r for r in final if r.status != "insufficient_data"]
    err = [abs(r.details["estimated_accuracy"] - r.details["accuracy"]) for r in judged]
    mae = float(np.mean(err))
    print(f"\nlabel-delay: {len(judged)} windows with labels, label-free estimate MAE "
          f"{mae:.4f} (max {max(err):.4f}); incident windows went from "
          f"{early[0].details['labelled']} to {late[0].details['labelled']} labels")
    assert mae < 0.03
