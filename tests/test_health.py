"""/healthz and /readyz beside /metrics on the metrics port (issue 15 point 5), and the message
key that spreads a model's traffic over partitions (point 6). Pure units: no broker, no database
(the database check is injected)."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry, Counter

from monitor.core.health import Health, serve_http
from monitor.core.ingest.events import prediction_key
from monitor.devstack.processes import free_port
from tests.support import http_get


def test_health_endpoints_follow_the_loop_the_broker_the_database_and_the_assignment():
    registry = CollectorRegistry()
    Counter("vitmon_events", "Events.", registry=registry).inc(3)
    db_error = {"value": None}
    health = Health(stall_s=0.5, broker_stale_s=30, db_check=lambda: db_error["value"])
    port = free_port()
    server = serve_http("127.0.0.1", port, registry, health)
    try:
        assert http_get(port, "/healthz")[0] == 200
        code, body = http_get(port, "/readyz")  # no broker answer yet, no partitions
        assert code == 503 and json.loads(body) == {"ok": False, "broker": False,
                                                    "database": True, "partitions": 0}
        health.broker_ok()
        health.assigned = 3
        code, body = http_get(port, "/readyz")
        assert code == 200 and json.loads(body)["partitions"] == 3
        db_error["value"] = "connection refused"
        health._db = (float("-inf"), None)  # expire the 2 s cache of the database check
        code, body = http_get(port, "/readyz")
        assert code == 503 and json.loads(body)["database_error"] == "connection refused"
        health.beat_at -= 1.0  # the loop has not polled for a second: stuck
        assert http_get(port, "/healthz")[0] == 503
        assert "vitmon_events_total 3.0" in http_get(port, "/metrics")[1]
    finally:
        server.shutdown()


def test_predictions_are_keyed_by_event_id_not_model_version():
    event = {"event_id": "cam-03-000123", "model_version": "2026.11.3"}
    assert prediction_key(event) == b"cam-03-000123"
    assert prediction_key({"model_version": "2026.11.3"}) is None
