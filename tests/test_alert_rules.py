"""Alert rules, fingerprints and the state machine: pure, no I/O."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest

from monitor.alerting.rules import alert_labels, annotations, dashboard_url, fingerprint, observe
from monitor.alerting.settings import AlertRule, AlertSettings, MaintenanceWindow
from monitor.alerting.state import INSUFFICIENT, AlertState, step
from monitor.contract import Finding, Severity, Status
from monitor.store.keys import WindowKey

T0 = 1_793_491_200_000  # 2026-11-01T00:00:00Z
MIN = 60_000


def slo_finding(subject: str, status: Status, severity: Severity, score: float = 20.0) -> Finding:
    return Finding("slo_burn_rate", 1, status, score=score, threshold=14.4, severity=severity,
                   n=5000, subject=subject, test="multiwindow-burn-rate",
                   details={"burn_rates": {"1h": score, "5m": score},
                            "error_budget_remaining": 0.8})


def key(window: int, version: str = "*", slice_: str = "all") -> WindowKey:
    return WindowKey("slo_burn_rate", "vit", version, slice_, window)


def run(states: list[tuple[int, bool | None | str]], for_windows: int,
        suppressed: set[int] = frozenset(), explained: set[int] = frozenset(),
        window_length: int | None = 1) -> list[str]:
    s, out = AlertState(), []
    for window, holds in states:
        quiet = "suppressed" if window in suppressed else "explained" if window in explained \
            else None
        s = step(s, window, holds, for_windows, quiet, window_length)
        out.append(s.state)
    return out


def test_for_counts_consecutive_windows_and_a_clear_window_resolves():
    assert run([(0, True), (1, True), (2, True), (3, False), (4, True)], 3) == \
        ["pending", "pending", "firing", "resolved", "pending"]
    # a pending alert that clears never fires
    assert run([(0, True), (1, False)], 2) == ["pending", "resolved"]


def test_for_counts_adjacent_windows_only_and_insufficient_data_resets_a_pending_alert():
    # a gap (window 1 never evaluated) restarts the count: windows 0 and 2 are not adjacent
    assert run([(0, True), (2, True), (3, True)], 2) == ["pending", "pending", "firing"]
    assert run([(0, True), (2, True)], 2, window_length=None) == ["pending", "firing"]
    # an insufficient-data window resets a pending alert ...
    assert run([(0, True), (1, INSUFFICIENT), (2, True), (3, True)], 2) == \
        ["pending", "resolved", "pending", "firing"]
    # ... but is not recovery for a firing one
    assert run([(0, True), (1, True), (2, INSUFFICIENT), (3, True), (4, False)], 2) == \
        ["pending", "firing", "firing", "firing", "resolved"]
    # a re-evaluation of the same window with insufficient data changes nothing
    assert run([(0, True), (0, INSUFFICIENT), (1, True)], 2) == ["pending", "pending", "firing"]


def test_an_explained_alert_stays_open_quietly_and_fires_when_no_longer_explained():
    assert run([(0, True), (1, True), (2, True), (3, True), (4, False)], 2, explained={1, 2}) == \
        ["pending", "explained", "explained", "firing", "resolved"]


def test_unknown_verdicts_and_older_windows_change_nothing_and_a_window_counts_once():
    assert run([(0, True), (1, None), (2, True)], 2, window_length=None) == \
        ["pending", "pending", "firing"]
    assert run([(5, True), (5, True), (5, True)], 2) == ["pending"] * 3  # re-evaluations
    assert run([(5, True), (6, True), (4, False)], 2) == ["pending", "firing", "firing"]


def test_maintenance_suppresses_and_the_alert_fires_again_after_it():
    assert run([(0, True), (1, True), (2, True), (3, True)], 1, suppressed={1, 2}) == \
        ["firing", "suppressed", "suppressed", "firing"]
    assert run([(0, True), (1, False)], 1, suppressed={0}) == ["suppressed", "resolved"]


def test_default_rules_page_only_on_fast_burn_and_severe_regressions():
    rules = AlertSettings().rules
    page = [r for r in rules if r.severity == "page"]
    assert {(r.match.detector, r.match.severity) for r in page} == {
        ("slo_burn_rate", ("page",)), ("version_health", ("page",)), ("performance", ("page",)),
        ("infra", ("page",))}  # an out-of-memory error spike (issue 14)
    ticket = {r.name for r in rules if r.severity == "ticket"}
    assert {"SLOSlowBurn", "DriftDetected", "VersionHealthDegraded"} <= ticket
    fast = slo_finding("latency", Status.ALERT, Severity.PAGE)
    slow = slo_finding("latency", Status.ALERT, Severity.TICKET, score=1.2)
    assert [o.rule.name for o in observe(rules, [(key(T0), fast)], lambda *a: []) if o.holds] == \
        ["SLOFastBurn"]
    assert [o.rule.name for o in observe(rules, [(key(T0), slow)], lambda *a: []) if o.holds] == \
        ["SLOSlowBurn"]
    drift = Finding("embedding_drift", 1, Status.ALERT, severity=Severity.PAGE)
    held = [o.rule for o in observe(rules, [(WindowKey("embedding_drift", "vit", "1", "all", T0),
                                              drift)], lambda *a: []) if o.holds]
    assert [(r.name, r.severity, r.for_windows) for r in held] == [("DriftDetected", "ticket", 2)]


def test_fingerprint_is_stable_for_one_problem_and_differs_between_problems():
    rule = AlertSettings().rules[0]
    a = observe([rule], [(key(T0), slo_finding("latency", Status.ALERT, Severity.PAGE, 20))],
                lambda *a: [])[0]
    b = observe([rule], [(key(T0 + MIN), slo_finding("latency", Status.ALERT, Severity.PAGE, 99))],
                lambda *a: [])[0]
    c = observe([rule], [(key(T0), slo_finding("errors", Status.ALERT, Severity.PAGE))],
                lambda *a: [])[0]
    fa, fb, fc = (fingerprint(alert_labels(rule, o.identity)) for o in (a, b, c))
    assert fa == fb != fc
    assert alert_labels(rule, a.identity) == {
        "alertname": "SLOFastBurn", "severity": "page", "model": "vit", "model_version": "*",
        "slice": "all", "detector": "slo_burn_rate", "subject": "latency"}


def test_label_templates_and_annotations_with_the_dashboard_deep_link():
    rule = AlertRule.model_validate({
        "name": "Canary", "severity": "page", "labels": {"team": "ml-{model}"},
        "match": {"detector": "version_health"}, "summary": "{model} {model_version} on {slice}"})
    f = Finding("version_health", 1, Status.ALERT, score=-0.28, threshold=-0.02, p_value=1e-9,
                severity=Severity.PAGE, n=300, subject="vs 2026.11.1",
                details={"verdict": "rollback recommended"})
    obs = observe([rule], [(WindowKey("version_health", "vit", "2026.11.2", "region=eu west", T0),
                            f)], lambda *a: [])[0]
    assert alert_labels(rule, obs.identity)["team"] == "ml-vit"
    ann = annotations(obs, "http://ui:8501/", "https://docs/alerting.md")
    assert ann["summary"] == "vit 2026.11.2 on region=eu west"
    assert "rollback recommended" in ann["description"] and "p=1e-09" in ann["description"]
    assert ann["runbook_url"] == "https://docs/alerting.md#version_health"
    url = urlparse(ann["dashboard_url"])
    assert (url.scheme, url.netloc, url.path) == ("http", "ui:8501", "/")
    assert parse_qs(url.query) == {"page": ["versions"], "model": ["vit"],
                                   "version": ["2026.11.2"], "slice": ["region=eu west"],
                                   "detector": ["version_health"]}


def test_composite_rule_needs_every_part_in_the_same_window():
    rule = AlertRule.model_validate({
        "name": "LatencyAndErrors", "severity": "page", "all_of": [
            {"detector": "slo_burn_rate", "subject": "latency*", "severity": ["page"]},
            {"detector": "slo_burn_rate", "subject": "availability", "severity": ["page"]}]})
    lat = slo_finding("latency-250ms", Status.ALERT, Severity.PAGE)
    avail_ok = slo_finding("availability", Status.OK, Severity.NONE, score=0.2)
    avail_bad = slo_finding("availability", Status.ALERT, Severity.PAGE)
    stored = {T0: [lat, avail_ok], T0 + MIN: [lat, avail_bad]}
    lookup = lambda m, v, s, w: stored.get(w, [])  # noqa: E731
    obs = observe([rule], [(key(T0), lat), (key(T0 + MIN), lat)], lookup)
    assert [(o.window_start_ms - T0, o.holds) for o in obs] == [(0, False), (MIN, True)]
    assert obs[1].identity.detector == "slo_burn_rate" and obs[1].identity.subject == ""
    missing = observe([rule], [(key(T0 + 2 * MIN), lat)], lambda *a: [lat])
    assert missing[0].holds is None  # the other part has not been judged: no verdict


def test_maintenance_window_matches_event_time_model_rule_and_severity():
    mw = MaintenanceWindow.model_validate({"name": "upgrade", "start": "2026-11-01T00:00:00Z",
                                           "end": "2026-11-01T01:00:00Z", "models": ["vit"],
                                           "severities": ["page"]})
    assert mw.covers(T0, "vit", "SLOFastBurn", "page")
    assert not mw.covers(T0 + 60 * MIN, "vit", "SLOFastBurn", "page")  # end is exclusive
    assert not mw.covers(T0, "other", "SLOFastBurn", "page")
    assert not mw.covers(T0, "vit", "SLOSlowBurn", "ticket")
    with pytest.raises(ValueError, match="end must be after start"):
        MaintenanceWindow.model_validate({"name": "x", "start": "2026-11-01T01:00:00Z",
                                          "end": "2026-11-01T00:00:00Z"})


def test_sub_findings_roll_up_into_their_detectors_alert():
    """One alert per (model, version, detector, slice): the default drift rule watches the main
    finding; the features that alerted are named in its description, never alerts of their own."""
    k = WindowKey("feature_drift", "vit", "1", "camera_id=cam-03", T0)
    main = Finding("feature_drift", 1, Status.ALERT, score=9.0, threshold=2.0, p_value=1e-9,
                   severity=Severity.TICKET, n=400)
    subs = [Finding("feature_drift", 1, Status.ALERT, p_value=1e-10, n=400, subject=s)
            for s in ("image.brightness", "image.contrast")]
    quiet = Finding("feature_drift", 1, Status.OK, p_value=0.4, n=400, subject="image.width")
    obs = [o for o in observe(AlertSettings().rules, [(k, main), *[(k, f) for f in subs],
                                                      (k, quiet)], lambda *a: [])]
    assert [(o.rule.name, o.identity.subject, o.holds) for o in obs] == \
        [("DriftDetected", "", True)]
    assert [f.subject for f in obs[0].subs] == ["image.brightness", "image.contrast"]
    ann = annotations(obs[0], "http://ui", "https://docs")
    assert "alerting sub-findings (2): image.brightness, image.contrast" in ann["description"]


def test_insufficient_data_is_its_own_verdict_and_incident_links_open_the_on_call_page():
    k = WindowKey("embedding_drift", "vit", "1", "all", T0)
    thin = Finding("embedding_drift", 1, Status.INSUFFICIENT_DATA, n=3)
    (o,) = observe(AlertSettings().rules, [(k, thin)], lambda *a: [])
    assert o.holds == INSUFFICIENT
    url = urlparse(dashboard_url("http://ui:8501", o.identity, {}, incident_id=42))
    assert parse_qs(url.query)["page"] == ["oncall"] and parse_qs(url.query)["incident"] == ["42"]
