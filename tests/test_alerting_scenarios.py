"""The simulator's scenarios end to end: `vitmon simulate` (real ViT traffic, time-compressed)
-> Kafka -> `vitmon run` -> SLO burn rates -> alert engine -> a real Alertmanager, verified by
reading Alertmanager's own `GET /api/v2/alerts`.

* latency-spike: a page reaches Alertmanager, fired at the event time the Workbook's detection
  time formula predicts for the realised error ratio (within one 1-minute bucket), and resolves
  after recovery;
* slow-burn: a ticket reaches Alertmanager, a page never does; steady: nothing at all;
* canary-regression: `rollback recommended` for the canary, never for the baseline.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from monitor.alerting.slo.burn import detection_time_s
from tests.alerting_support import alerts_json, evaluated_to, slo_ratio, write_config
from tests.alertmanager_support import Alertmanager
from tests.support import VITMON, make_topics, monitor_env, query, start_monitor

# Paced replays watched in Alertmanager every 0.25 s: a monitor slowed by a neighbour's test reads
# a spike in one checkpoint, which fires and resolves it before Alertmanager sees it firing.
pytestmark = pytest.mark.serial

CLIENT = "confluent-kafka"
START = "2026-11-01T00:00:00Z"
START_MS = 1_793_491_200_000
BUCKET_MS = 60_000


def _simulate(env, topics, manifest, scenario: str, rate: float, duration: float,
              speedup: float | None) -> subprocess.Popen:
    pace = ["--speedup", str(speedup)] if speedup else ["--as-fast-as-possible"]
    return subprocess.Popen(
        [VITMON, "simulate", "--scenario", scenario, "--rate", str(rate), "--duration",
         str(duration), "--start", START, "--seed", "0", "--client", CLIENT,
         "--predictions-topic", topics.predictions, "--labels-topic", topics.labels,
         "--no-progress", "--manifest", str(manifest), *pace],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _publish_then_consume(env, topics, tmp_path, scenario: str, rate: float, duration: float,
                          timeout_s: float) -> None:
    """The whole scenario published as fast as possible, then consumed until idle."""
    sim = _simulate(env, topics, tmp_path / "m.json", scenario, rate, duration, None)
    assert sim.wait(timeout_s) == 0, sim.stderr.read()
    log = tmp_path / "monitor.log"  # 1 s idle: as tests.support.publish_and_consume
    assert start_monitor(env, "--exit-when-idle", "1", log=log).wait(timeout_s) == 0, \
        log.read_text()


def _watch(am: Alertmanager, sim: subprocess.Popen, done) -> dict:
    """Poll Alertmanager while the scenario plays: every (alertname, severity, subject) ever
    active, and those active at the end."""
    ever: dict[tuple[str, str, str], dict] = {}
    while True:
        finished = sim.poll() is not None and done()
        active = am.alerts()
        for a in active:
            lab = a["labels"]
            ever.setdefault((lab["alertname"], lab["severity"], lab.get("subject", "")), a)
        if finished:
            return {"ever": ever, "end": {(a["labels"]["alertname"], a["labels"]["severity"],
                                           a["labels"].get("subject", "")) for a in active}}
        time.sleep(0.25)


def _run_paced(broker, db_url, topics, tmp_path, am, scenario, rate, duration, speedup):
    config = write_config(tmp_path / "vitmon.yaml")
    env = monitor_env(broker.bootstrap, db_url, topics, CLIENT, VITMON_CONFIG=str(config),
                      VITMON_ALERTMANAGER_URL=am.url, VITMON_DETECTORS="traffic",
                      VITMON_SLICES__ATTRIBUTES="[]")
    log = tmp_path / "monitor.log"
    monitor = start_monitor(env, log=log)
    manifest = tmp_path / "manifest.json"
    sim = _simulate(env, topics, manifest, scenario, rate, duration, speedup)
    end_ms = START_MS + int(duration * 1000)
    deadline = time.monotonic() + 900

    def caught_up() -> bool:
        assert time.monotonic() < deadline, "the monitor did not catch up"
        judged = min(evaluated_to(db_url, s) for s in ("latency-250ms", "availability"))
        pending = [a for a in alerts_json(env) if a["delivery"]["status"] in ("pending", "retrying")]
        return judged >= end_ms - 3 * BUCKET_MS and not pending

    try:
        seen = _watch(am, sim, caught_up)
    finally:
        monitor.terminate()
        monitor.wait(60)
    assert sim.returncode == 0, sim.stderr.read()
    return env, json.loads(manifest.read_text()), seen


def test_latency_spike_pages_at_the_workbook_detection_time_and_resolves(
        broker, db_url_factory, topic_names, tmp_path, alertmanager):
    db_url = db_url_factory()
    topics = make_topics(topic_names, CLIENT, broker.bootstrap)
    # 6 h of event time at 2 events/s, played 480x faster than real time (45 s); the 72-minute
    # spike is still ~9 s of wall time in Alertmanager, polled every 0.25 s
    env, manifest, seen = _run_paced(broker, db_url, topics, tmp_path, alertmanager,
                                     "latency-spike", 2, 6 * 3600, 480)
    page = ("SLOFastBurn", "page", "latency-250ms")
    assert page in seen["ever"], seen["ever"].keys()
    assert page not in seen["end"]  # resolved after recovery
    am_alert = seen["ever"][page]
    assert am_alert["labels"]["model"] == "vit-tiny-digits"
    assert am_alert["annotations"]["dashboard_url"].endswith(  # its incident on the On-call page
        f"page=oncall&incident={am_alert['labels']['incident']}&model=vit-tiny-digits&version=%2A"
        "&slice=all&detector=slo_burn_rate")

    incident = manifest["incidents"][0]
    rows = [a for a in alerts_json(env) if a["alertname"] == "SLOFastBurn"
            and a["labels"]["subject"] == "latency-250ms"]
    assert len(rows) == 1 and rows[0]["state"] == "resolved"
    fired_ms = rows[0]["fired_window_ms"] + BUCKET_MS  # judged at the end of that minute
    assert rows[0]["resolved_window_ms"] >= incident["end_ms"] - BUCKET_MS
    # the Workbook's detection time for the realised error ratios, fastest page tier
    e0, _ = slo_ratio(db_url, "latency-250ms", incident["start_ms"] - 3_600_000, incident["start_ms"])
    e, n = slo_ratio(db_url, "latency-250ms", incident["start_ms"] // BUCKET_MS * BUCKET_MS,
                     fired_ms)
    predicted_s = min(detection_time_s(3600, 14.4, 0.99, e, e0),
                      detection_time_s(21600, 6.0, 0.99, e, e0))
    measured_s = (fired_ms - incident["start_ms"]) / 1000
    print(f"\nlatency-spike: bad ratio {e:.4f} during the spike ({n} events), {e0:.4f} before; "
          f"detection predicted {predicted_s:.0f} s, measured {measured_s:.0f} s (event time)")
    assert abs(measured_s - predicted_s) <= BUCKET_MS / 1000
    # nothing but the latency SLO paged
    assert {k for k in seen["ever"] if k[1] == "page"} == {page}


def test_slow_burn_opens_a_ticket_and_never_pages(broker, db_url_factory, topic_names, tmp_path,
                                                  alertmanager):
    db_url = db_url_factory()
    topics = make_topics(topic_names, CLIENT, broker.bootstrap)
    # 72 h of event time at 0.15 events/s, 5760x faster than real time (45 s); the 50 h burn is
    # still ~30 s of wall time
    env, manifest, seen = _run_paced(broker, db_url, topics, tmp_path, alertmanager,
                                     "slow-burn", 0.15, 72 * 3600, 5760)
    assert ("SLOSlowBurn", "ticket", "availability") in seen["ever"], seen["ever"].keys()
    assert not [k for k in seen["ever"] if k[1] == "page"]
    rows = alerts_json(env)
    assert not [a for a in rows if a["severity"] == "page"]
    ticket = [a for a in rows if a["alertname"] == "SLOSlowBurn"]
    incident = manifest["incidents"][0]
    assert ticket and all(incident["start_ms"] < a["fired_window_ms"] < incident["end_ms"]
                          for a in ticket)
    e0, _ = slo_ratio(db_url, "availability", START_MS, incident["start_ms"])
    e, n = slo_ratio(db_url, "availability", incident["start_ms"], ticket[0]["fired_window_ms"])
    print(f"\nslow-burn: error ratio {e:.4f} ({n} events) vs {e0:.4f} before; ticket "
          f"{(ticket[0]['fired_window_ms'] + BUCKET_MS - incident['start_ms']) / 3.6e6:.1f} h "
          f"after the burn began (the 3 d window then holds only "
          f"{(incident['start_ms'] - START_MS) / 3.6e6:.1f} h of history: no full-window formula)")


def test_steady_traffic_fires_nothing(broker, db_url_factory, topic_names, tmp_path, alertmanager):
    db_url = db_url_factory()
    topics = make_topics(topic_names, CLIENT, broker.bootstrap)
    config = write_config(tmp_path / "vitmon.yaml")
    env = monitor_env(broker.bootstrap, db_url, topics, CLIENT, VITMON_CONFIG=str(config),
                      VITMON_ALERTMANAGER_URL=alertmanager.url, VITMON_DETECTORS="traffic",
                      VITMON_SLICES__ATTRIBUTES="[]")
    _publish_then_consume(env, topics, tmp_path, "steady", 2, 2 * 3600, timeout_s=600)
    judged = query(db_url, "SELECT count(*), count(*) FILTER (WHERE status = 'alert') FROM "
                   "findings WHERE detector = 'slo_burn_rate'")[0]
    assert judged[0] > 200 and judged[1] == 0  # ~2 h of minutes per SLO judged, none bad
    assert alerts_json(env) == []
    assert alertmanager.alerts() == []


def test_canary_regression_recommends_rollback_of_the_canary_only(broker, db_url_factory,
                                                                   topic_names, tmp_path):
    db_url = db_url_factory()
    topics = make_topics(topic_names, CLIENT, broker.bootstrap)
    config = write_config(tmp_path / "vitmon.yaml",
                          models={"vit-tiny-digits": {"baseline_version": "2026.11.1"}})
    env = monitor_env(broker.bootstrap, db_url, topics, CLIENT, VITMON_CONFIG=str(config),
                      VITMON_DETECTORS="traffic,version_health", VITMON_WINDOWS__SIZE_S="600",
                      VITMON_SLICES__ATTRIBUTES="[]")
    _publish_then_consume(env, topics, tmp_path, "canary-regression", 3, 4 * 3600, timeout_s=900)
    rows = query(db_url, "SELECT model_version, status, severity, details->>'verdict' AS verdict, "
                 "details->'worse' AS worse FROM findings WHERE detector = 'version_health' "
                 "AND subject <> ''")
    assert rows and {r.model_version for r in rows} == {"2026.11.2"}  # never the baseline
    rollback = [r for r in rows if r.verdict == "rollback recommended"]
    severe = [r for r in rollback if {"accuracy", "error_rate"} & set(r.worse)]
    print(f"\ncanary-regression: {len(rollback)} of {len(rows)} canary windows: rollback "
          f"recommended ({len(severe)} severe: page); worse metrics "
          f"{sorted({m for r in rollback for m in r.worse})}")
    assert len(rollback) >= len(rows) // 2 and len(severe) >= len(rollback) // 2
    assert all(r.status == "alert" for r in rollback)
    # page only for a severe regression (accuracy or errors), else a ticket
    assert all(r.severity == ("page" if r in severe else "ticket") for r in rollback)
    assert any("accuracy" in r.worse for r in rollback)
    pages = [a for a in alerts_json(env) if a["alertname"] == "RollbackRecommended"]
    assert pages and {a["labels"]["model_version"] for a in pages} == {"2026.11.2"}
