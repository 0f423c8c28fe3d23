"""Alert delivery against a real Alertmanager (Debian's binary) and the real `vitmon run`:
a maintenance window suppresses; Alertmanager stopped for 20 s then started receives the alert
once it is back, and the alert history in PostgreSQL loses nothing.

Traffic is generated (tests/alerting_support.py: contract-v1 events without the ViT) so the
error ratio per minute is exact: 1 hour healthy, then 100 % errors, then healthy again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from uuid import uuid4

import pytest

from monitor.store.db import create_database, drop_database
from tests.alerting_support import alerts_json, error_stream, seen_in_alertmanager, wait_for, write_config
from tests.alertmanager_support import Alertmanager
from tests.support import make_topics, monitor_env, produce, run_cli, start_monitor

CLIENT = "confluent-kafka"
T0 = 1_793_491_200_000  # 2026-11-01T00:00:00Z
MIN = 60_000
#: How long Alertmanager stays down: the page fires ~6 s in, and retries back off from 0.5 s to
#: the config's retry_max_s (2 s) within 3.5 s, so the rest are retries at that cap. Nothing in
#: delivery gives up after a time (a longer outage only adds capped retries), so 20 s shows the
#: same as the 60 s it was.
OUTAGE_S = 20


def _env(broker, db_url, topics, config, am):
    return monitor_env(broker.bootstrap, db_url, topics, CLIENT, VITMON_CONFIG=str(config),
                       VITMON_ALERTMANAGER_URL=am.url, VITMON_DETECTORS="traffic",
                       VITMON_SLICES__ATTRIBUTES="[]")


@pytest.fixture(scope="module", autouse=True)
def maintenance_run(broker, pg_admin_url, tmp_path_factory) -> Iterator[dict]:
    """The maintenance-window run, started in the background when the module starts: its
    monitor consumes while the next test keeps Alertmanager down for OUTAGE_S (the two share
    nothing: own Alertmanager, database and topics); its test waits for it."""
    tmp = tmp_path_factory.mktemp("maintenance")
    config = write_config(tmp / "vitmon.yaml", alerts={"maintenance": [{
        "name": "failover-drill", "start": "2026-11-01T00:50:00Z",
        "end": "2026-11-01T03:00:00Z", "models": ["vit-tiny-digits"]}]})
    db_name = f"vitmon_test_{uuid4().hex[:12]}"
    db_url = create_database(pg_admin_url, db_name)
    am = Alertmanager(tmp)
    am.start()
    topics = make_topics(lambda: f"t{uuid4().hex[:8]}", CLIENT, broker.bootstrap)
    env = _env(broker, db_url, topics, config, am)
    outage = lambda m: 1.0 if 60 <= m < 75 else 0.0  # noqa: E731
    produce(CLIENT, broker.bootstrap, topics.predictions, error_stream(T0, 120, 60, outage))
    log = tmp / "monitor.log"
    proc = start_monitor(env, "--exit-when-idle", "1", log=log)  # produced before: 1 s
    try:
        yield {"env": env, "proc": proc, "log": log, "alertmanager": am}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        am.stop()
        drop_database(pg_admin_url, db_name)


def test_alertmanager_down_for_20s_gets_the_alert_when_back(broker, db_url_factory, topic_names,
                                                            tmp_path, alertmanager):
    config = write_config(tmp_path / "vitmon.yaml")
    db_url = db_url_factory()
    topics = make_topics(topic_names, CLIENT, broker.bootstrap)
    env = _env(broker, db_url, topics, config, alertmanager)
    assert run_cli(env, "db", "upgrade").returncode == 0  # so `vitmon alerts` works at once
    log = tmp_path / "monitor.log"
    monitor = start_monitor(env, log=log)
    try:
        alertmanager.stop()
        down_at = time.monotonic()
        produce(CLIENT, broker.bootstrap, topics.predictions,
                error_stream(T0, 75, 60, lambda m: 1.0 if m >= 60 else 0.0))

        def firing_and_retrying():
            rows = [a for a in alerts_json(env, "--state", "firing")
                    if a["alertname"] == "SLOFastBurn"]
            return rows if rows and rows[0]["delivery"]["status"] == "retrying" else None

        before = wait_for(firing_and_retrying, 120, "a firing page that cannot be delivered")[0]
        assert before["delivery"]["failed_attempts"] >= 1 and before["delivery"]["last_error"]
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        alertmanager.start()
        got = wait_for(lambda: [a for a in alertmanager.alerts()
                             if a["labels"]["alertname"] == "SLOFastBurn"], 60,
                    "the page in Alertmanager")
        assert seen_in_alertmanager(got) == {("SLOFastBurn", "page", "availability")}
        am = got[0]
        # vitmon's labels, and the incident the alert belongs to (Alertmanager groups by it)
        assert before["incident_id"] is not None
        assert am["labels"] == {**before["labels"], "incident": str(before["incident_id"])}
        assert set(am["annotations"]) >= {"summary", "description", "runbook_url",
                                          "dashboard_url"}
        assert am["annotations"]["dashboard_url"].startswith(
            f"http://localhost:8501/?page=oncall&incident={before['incident_id']}&")
        after = wait_for(lambda: [a for a in alerts_json(env, "--state", "firing")
                               if a["delivery"]["status"] == "delivered"], 30, "delivered")[0]
        assert after["id"] == before["id"] and after["delivery"]["failed_attempts"] == 0
        # recovery: healthy traffic resolves it (once the 6x tier's 30 min short window is
        # clean too, about 30 min of event time), and Alertmanager is told (endsAt = now)
        produce(CLIENT, broker.bootstrap, topics.predictions,
                error_stream(T0 + 75 * MIN, 45, 60, lambda m: 0.0))
        wait_for(lambda: not [a for a in alertmanager.alerts()
                           if a["labels"]["alertname"] == "SLOFastBurn"], 120,
              "the page to resolve in Alertmanager")
    finally:
        monitor.terminate()
        monitor.wait(60)
    history = [a for a in alerts_json(env) if a["alertname"] == "SLOFastBurn"]
    assert len(history) == 1
    assert [(t["from"], t["to"]) for t in history[0]["transitions"]] == [
        ("inactive", "firing"), ("firing", "resolved")]
    assert history[0]["delivery"]["last_sent_state"] == "resolved"
    assert "alertmanager unreachable, will retry" in log.read_text()
    ticket = [a for a in alerts_json(env) if a["severity"] == "ticket"]
    assert all(a["labels"]["alertname"] == "SLOSlowBurn" for a in ticket)
    assert run_cli(env, "alerts").returncode == 0


def test_a_maintenance_window_suppresses_the_page(maintenance_run):
    env, log, alertmanager = (maintenance_run[k] for k in ("env", "log", "alertmanager"))
    assert maintenance_run["proc"].wait(300) == 0, log.read_text()
    alerts = [a for a in alerts_json(env) if a["labels"].get("subject") == "availability"]
    page = [a for a in alerts if a["alertname"] == "SLOFastBurn"]
    assert len(page) == 1, alerts
    # it would have fired at once (for: 1); maintenance kept it from Alertmanager
    assert [(t["from"], t["to"]) for t in page[0]["transitions"]] == [
        ("inactive", "suppressed"), ("suppressed", "resolved")]
    assert page[0]["startsAt"] is None and page[0]["delivery"]["status"] == "not_applicable"
    assert alertmanager.alerts() == []
