"""Incidents, not alert storms: the alert engine on a real PostgreSQL, delivering to a real
Alertmanager that groups by ``[incident, model]`` and notifies a webhook.

A broken camera (``camera_id=cam-03``, in ``region=us-east`` and ``device=edge-gpu``) drifts in
two detectors; its region, its device and ``all`` drift with it. Expected: two alerts (one per
detector) on the camera's slice, the four containing-slice alerts attached to them as
"explained by camera_id=cam-03" (never delivered), one incident holding all of it, one
Alertmanager notification carrying the incident, and everything resolved when the drift stops.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from monitor.alerting.delivery import AlertSender
from monitor.alerting.engine import AlertHook
from monitor.alerting.explain import carriers, contains_by_counts
from monitor.alerting.settings import AlertmanagerSettings, AlertSettings
from monitor.contract import Finding, Severity, Status
from monitor.core.checkpoint import CheckpointResult
from monitor.store import migrate, predictions
from monitor.store.db import normalise_url
from monitor.store.incidents import list_incidents
from monitor.store.keys import WindowKey
from monitor.store.terms import Terms
from tests.alertmanager_support import Alertmanager, free_port
from ui.queries import incidents as ui_incidents

MODEL, VERSION = "vit", "2026.11.1"
T0 = 1_793_491_200_000
W = 600_000
CAM = "camera_id=cam-03"
CONTAINERS = ("all", "region=us-east", "device=edge-gpu")
SLICES_OF = {"cam-03": ("all", CAM, "region=us-east", "device=edge-gpu"),
             "cam-01": ("all", "camera_id=cam-01", "region=eu-west", "device=edge-gpu"),
             "cam-05": ("all", "camera_id=cam-05", "region=us-east", "device=cpu")}


def test_containment_from_counts_and_the_most_specific_carrier():
    n = {"all": 1000, "region=us-east": 400, CAM: 150, "camera_id=cam-05": 100}
    both = {(CAM, "region=us-east"): 150, (CAM, "all"): 150, ("camera_id=cam-05", "all"): 100,
            ("camera_id=cam-05", "region=us-east"): 100, ("region=us-east", "all"): 400}
    assert contains_by_counts("region=us-east", CAM, n, both, 0.99)
    assert not contains_by_counts(CAM, "region=us-east", n, both, 0.99)
    assert not contains_by_counts("region=us-east", CAM, n, {**both, (CAM, "region=us-east"): 140},
                                  0.99)
    inside = lambda big, small: contains_by_counts(big, small, n, both, 0.99)  # noqa: E731
    # one camera of the region alerts: it carries the region and `all`
    assert carriers(["all", "region=us-east", CAM], inside, n) == {"all": CAM, "region=us-east": CAM}
    # both cameras of the region (62 % of it) alert: a broad cause, the region carries them all
    assert carriers(list(n), inside, n, 0.5, both) == {"all": "region=us-east", CAM: "region=us-east",
                                            "camera_id=cam-05": "region=us-east"}
    # a camera explains the two groups of a protected attribute it feeds (70/30), which are not
    # a broad cause (one camera is 15 % of each)
    groups = {"all": 1000, CAM: 150, "group=A": 700, "group=B": 300}
    pairs = {(CAM, "group=A"): 105, (CAM, "group=B"): 45, (CAM, "all"): 150,
             ("group=A", "all"): 700, ("group=B", "all"): 300}
    overlap = lambda big, small: contains_by_counts(big, small, groups, pairs, 0.25)  # noqa: E731
    assert carriers(list(groups), overlap, groups, 0.5, pairs) == {
        "all": CAM, "group=A": CAM, "group=B": CAM}
    # ... unless they are a small part of it
    assert carriers(list(n), inside, {**n, "region=us-east": 1000, "all": 3000}, 0.5, both) == {
        "all": CAM, "region=us-east": CAM}


def _events(conn, window_ms: int) -> None:
    ids = Terms().ids(conn, {s for slices in SLICES_OF.values() for s in slices})
    rows = [{"id": f"e-{window_ms}-{cam}-{i}", "ts": window_ms + i, "w": window_ms,
             "s": [ids[s] for s in slices], "v": VERSION}
            for cam, slices in SLICES_OF.items() for i in range(40)]
    predictions.ensure_partitions(conn, [np.array([window_ms, window_ms + 40])])
    conn.execute(text(
        "INSERT INTO predictions (event_id, ts_ms, model, model_version, window_start_ms, pred, "
        "is_error, latency_ms, slice_ids, attr_ids, kafka_partition, kafka_offset) VALUES "
        "(:id, :ts, 'vit', :v, :w, 1, false, 10, :s, '{}', 0, 0)"), rows)


def _findings(window_ms: int, drifting: bool) -> list[tuple[WindowKey, Finding]]:
    out = []
    for det in ("embedding_drift", "feature_drift"):
        for sl in {s for slices in SLICES_OF.values() for s in slices}:
            bad = drifting and (sl == CAM or sl in CONTAINERS) and \
                not (det == "feature_drift" and sl == "device=edge-gpu")
            k = WindowKey(det, MODEL, VERSION, sl, window_ms)
            out.append((k, Finding(det, 1, Status.ALERT if bad else Status.OK,
                                   severity=Severity.TICKET if bad else Severity.NONE,
                                   score=9.0 if bad else 0.5, threshold=2.0, n=40)))
            if det == "feature_drift":
                out.append((k, Finding(det, 1, Status.ALERT if bad else Status.OK,
                                       subject="image.brightness", n=40)))
    return out


class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook():
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", free_port()), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/", _Hook.received
    server.shutdown()


def test_a_broken_camera_is_one_incident_and_one_notification(fresh_db_url, tmp_path, webhook):
    hook_url, received = webhook
    am = Alertmanager(tmp_path)
    am.config.write_text(
        "route:\n  receiver: hook\n  group_by: [incident, model]\n  group_wait: 1s\n"
        "  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n"
        f"    webhook_configs:\n      - url: {hook_url}\n        send_resolved: true\n")
    am.start()
    migrate.upgrade(fresh_db_url)
    engine = create_engine(normalise_url(fresh_db_url))
    hook = AlertHook(AlertSettings(), "http://ui:8501", window_ms=W)
    sender = AlertSender(engine, AlertmanagerSettings(url=am.url, poll_s=0.2))
    try:
        for i, drifting in enumerate([False, True, True, True, False]):
            with engine.begin() as conn:
                _events(conn, T0 + i * W)
                hook.before_commit(conn, CheckpointResult(findings=_findings(T0 + i * W, drifting)))
            if i == 3:
                alerts = {(a["labels"]["detector"], a["labels"]["slice"]): a
                          for a in _alerts(engine)}
                firing = sorted(k for k, a in alerts.items() if a["state"] == "firing")
                assert firing == [("embedding_drift", CAM), ("feature_drift", CAM)]
                explained = {k: a["explained_by"] for k, a in alerts.items()
                             if a["state"] == "explained"}
                assert explained == {("embedding_drift", s): CAM for s in CONTAINERS} | {
                    ("feature_drift", s): CAM for s in ("all", "region=us-east")}
                (inc,) = list_incidents(engine)
                assert (inc["slice"], inc["state"], inc["severity"]) == (CAM, "open", "ticket")
                assert sorted(inc["detectors"]) == ["embedding_drift", "feature_drift"]
                assert {(e["slice"], e["explained_by"]) for e in inc["explained"]} == \
                    {(s, CAM) for s in CONTAINERS}
                assert {a["incident_id"] for a in alerts.values()} == {inc["id"]}
                link = urlparse(alerts[("embedding_drift", CAM)]["annotations"]["dashboard_url"])
                assert parse_qs(link.query)["incident"] == [str(inc["id"])]
                assert alerts[("embedding_drift", CAM)]["annotations"]["explains"] == \
                    ", ".join(sorted(CONTAINERS))
                assert sender.send_due() == 2  # explained alerts are not delivered
                firing_notes = _wait(received, lambda n: n["status"] == "firing")
                assert len(firing_notes) == 1, firing_notes
                note = firing_notes[0]
                assert note["groupLabels"] == {"incident": str(inc["id"]), "model": MODEL}
                assert sorted(a["labels"]["detector"] for a in note["alerts"]) == \
                    ["embedding_drift", "feature_drift"]
                with engine.connect() as conn:
                    (ui_inc,) = ui_incidents.incidents(conn, T0, T0 + 10 * W)
                    members = ui_incidents.incident_alerts(conn, ui_inc.id)
                assert ui_inc.explained_slices == tuple(sorted(CONTAINERS))
                assert ui_inc.notification["group_labels"]["incident"] == str(inc["id"])
                assert [m.explained_by for m in members[:2]] == [None, None]
        (inc,) = list_incidents(engine)
        assert inc["state"] == "resolved" and inc["resolved_window_ms"] == T0 + 4 * W
        assert {a["state"] for a in _alerts(engine)} == {"resolved"}
        sender.send_due()
        assert _wait(received, lambda n: n["status"] == "resolved")
    finally:
        am.stop()
        engine.dispose()


def _alerts(engine) -> list[dict]:
    from monitor.store.alerts import list_alerts
    return list_alerts(engine)


def _wait(received: list[dict], pred, timeout_s: float = 20) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        hits = [n for n in received if pred(n)]
        if hits:
            time.sleep(1.5)  # a second notification of the same group would come by now
            return [n for n in received if pred(n)]
        time.sleep(0.2)
    return []


def test_which_open_incident_a_firing_alert_joins():
    from monitor.alerting.incidents import related
    from monitor.store.incidents import Incident

    cam = Incident(1, MODEL, VERSION, CAM, "open", "ticket", T0, T0, detectors=["feature_drift"])
    assert related(cam, MODEL, VERSION, CAM)
    assert related(cam, MODEL, VERSION, f"{CAM},device=edge-gpu")  # more specific: joins
    assert not related(cam, MODEL, VERSION, "all")  # broader and not explained: another cause
    assert not related(cam, MODEL, "2026.11.2", CAM)  # another version
    assert related(cam, MODEL, "*", CAM)  # an SLO alert spans versions
    assert not related(cam, "other-model", VERSION, CAM)
    slo = Incident(2, MODEL, "*", "region=us-east", "open", "page", T0, T0,
                   detectors=["slo_burn_rate"])
    assert related(slo, MODEL, VERSION, "region=us-east")  # drift joins an SLO-only incident
    mixed = Incident(3, MODEL, VERSION, "region=us-east", "open", "page", T0, T0,
                     detectors=["slo_burn_rate", "feature_drift"])
    assert not related(mixed, MODEL, "2026.11.2", "region=us-east")
    # a canary comparison: the version is the cause, whatever the slice
    comparators = frozenset({"version_health"})
    canary = Incident(4, MODEL, CANARY, "group=A", "open", "page", T0, T0,
                      detectors=["version_health"])
    assert related(canary, MODEL, CANARY, "region=us-east", "version_health", comparators)
    assert not related(canary, MODEL, CANARY, "region=us-east", "version_health")  # not declared
    assert not related(canary, MODEL, "2026.11.3", "region=us-east", "version_health",
                       comparators)  # another canary: another cause
    assert not related(canary, MODEL, CANARY, "region=us-east", "feature_drift", comparators)
    assert not related(cam, MODEL, VERSION, "region=us-east", "version_health", comparators)
    # the canary's whole traffic drifting beside its failing comparison: the same cause
    assert related(canary, MODEL, CANARY, "all", "feature_drift", comparators)
    assert not related(canary, MODEL, CANARY, "all", "feature_drift")  # comparator not declared
    assert not related(canary, MODEL, VERSION, "all", "feature_drift", comparators)  # baseline
    assert not related(cam, MODEL, VERSION, "all", "feature_drift", comparators)  # no comparison


CANARY = "2026.11.2"
CANARY_SLICES = ("group=A", "group=B", "region=us-east", "device=cloud-gpu")


def _canary_findings(window_ms: int, bad: bool) -> list[tuple[WindowKey, Finding]]:
    """The bad canary's comparison with the baseline, failing on four slices of different
    dimensions (none contains another), as in the demo's mixed scenario."""
    return [(WindowKey("version_health", MODEL, CANARY, sl, window_ms),
             Finding("version_health", 1, Status.ALERT if bad else Status.OK,
                     severity=Severity.PAGE if bad else Severity.NONE, subject=f"vs {VERSION}",
                     score=0.2 if bad else 0.0, threshold=0.02, n=200))
            for sl in CANARY_SLICES]


def _other_camera(window_ms: int, bad: bool) -> list[tuple[WindowKey, Finding]]:
    """cam-01 (eu-west, edge-gpu) drifting at the same time in its predictions: an unrelated
    cause."""
    k = WindowKey("prediction_drift", MODEL, VERSION, "camera_id=cam-01", window_ms)
    return [(k, Finding("prediction_drift", 1, Status.ALERT if bad else Status.OK,
                        severity=Severity.TICKET if bad else Severity.NONE, score=9.0 if bad
                        else 0.5, threshold=2.0, n=40))]


def test_a_canary_failing_on_several_slices_is_one_incident_beside_unrelated_ones(db_url_factory):
    """Concurrently: cam-03 drifts (its containing slices explained), a second camera cam-01
    drifts, and the canary's comparison fails on four unrelated slices. Three causes, three
    incidents: the canary's holds its four alerts and spans the version (slice ``all``); the
    two cameras of the baseline stay apart from each other and from the canary."""
    db_url = db_url_factory()
    migrate.upgrade(db_url)
    engine = create_engine(normalise_url(db_url))
    hook = AlertHook(AlertSettings(), "http://ui:8501", window_ms=W,
                     version_causes=frozenset({"version_health"}))
    try:
        for i, bad in enumerate([False, True, True, True]):
            with engine.begin() as conn:
                _events(conn, T0 + i * W)
                hook.before_commit(conn, CheckpointResult(findings=[
                    *_findings(T0 + i * W, bad), *_other_camera(T0 + i * W, bad),
                    *_canary_findings(T0 + i * W, bad)]))
        incs = {(i["model_version"], i["slice"]): i for i in list_incidents(engine)}
        assert sorted(incs) == [(VERSION, "camera_id=cam-01"), (VERSION, CAM), (CANARY, "all")]
        canary = incs[CANARY, "all"]
        assert (canary["detectors"], canary["severity"]) == (["version_health"], "page")
        members = [a for a in _alerts(engine) if a["incident_id"] == canary["id"]]
        assert sorted(a["labels"]["slice"] for a in members) == sorted(CANARY_SLICES)
        assert {a["state"] for a in members} == {"firing"}
        assert sorted(incs[VERSION, CAM]["detectors"]) == ["embedding_drift", "feature_drift"]
        assert incs[VERSION, "camera_id=cam-01"]["detectors"] == ["prediction_drift"]
    finally:
        engine.dispose()


def test_an_alert_that_fires_and_resolves_within_one_checkpoint_has_its_incident(db_url_factory):
    """A catch-up checkpoint evaluates many windows at once: the camera's alerts fire and
    resolve inside it, and still form one (resolved) incident."""
    db_url = db_url_factory()
    migrate.upgrade(db_url)
    engine = create_engine(normalise_url(db_url))
    hook = AlertHook(AlertSettings(), "http://ui:8501", window_ms=W)
    try:
        with engine.begin() as conn:
            findings = []
            for i, drifting in enumerate([False, True, True, True, False]):
                _events(conn, T0 + i * W)
                findings += _findings(T0 + i * W, drifting)
            hook.before_commit(conn, CheckpointResult(findings=findings))
        (inc,) = list_incidents(engine)
        assert (inc["slice"], inc["state"]) == (CAM, "resolved")
        assert sorted(inc["detectors"]) == ["embedding_drift", "feature_drift"]
        fired = [a for a in _alerts(engine) if a["fired_window_ms"] is not None]
        assert sorted(a["labels"]["detector"] for a in fired) == ["embedding_drift",
                                                                  "feature_drift"]
        assert {a["incident_id"] for a in fired} == {inc["id"]}
    finally:
        engine.dispose()
