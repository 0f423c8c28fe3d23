"""`vitmon rules export` against the real promtool (Debian package `prometheus`): the committed
rules are a fresh export, `promtool check rules` accepts them, and the unit tests in
tests/promtool/ (both page conditions, the ticket condition, the minimum-events guard, steady
traffic) pass under `promtool test rules`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from monitor.alerting.slo.promrules import export
from monitor.app.config import load_settings
from tests.support import run_cli

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "deploy" / "vitmon-alerting.yaml"
COMMITTED = ROOT / "deploy" / "prometheus" / "rules.yml"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def _promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=300)


def test_committed_rules_are_a_fresh_export(tmp_path):
    out = tmp_path / "rules.yml"
    done = run_cli({"PATH": "/usr/bin:/bin"}, "--config", str(CONFIG), "rules", "export",
                   "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_text() == COMMITTED.read_text(), \
        "deploy/prometheus/rules.yml is stale: vitmon --config deploy/vitmon-alerting.yaml " \
        "rules export --out deploy/prometheus/rules.yml"


def test_export_follows_the_configured_tiers_and_leaves_accuracy_slos_out():
    settings = load_settings(CONFIG, env={})
    groups = yaml.safe_load(export(settings.slos, settings.burn_rate, settings.ui.base_url,
                                   settings.alerts.runbook_base_url))["groups"]
    names = [g["name"] for g in groups]
    assert "vitmon-slo-alerts-availability" in names
    assert not any("accuracy-90" in n for n in names)
    alerts = {r["alert"]: r for g in groups if g["name"] == "vitmon-slo-alerts-availability"
              for r in g["rules"]}
    page = alerts["SLOFastBurn"]["expr"]
    assert "ratio_rate1h" in page and "ratio_rate5m" in page and "(14.4 * 0.005)" in page
    assert "ratio_rate6h" in page and "ratio_rate30m" in page and "(6 * 0.005)" in page
    assert ">= 2000" in page  # the minimum-events guard, scaled: 10 / (1 - 0.995)
    assert "(1 * 0.005)" in alerts["SLOSlowBurn"]["expr"]
    assert alerts["SLOFastBurn"]["labels"]["severity"] == "page"
    assert alerts["SLOSlowBurn"]["labels"]["severity"] == "ticket"


def test_promtool_accepts_the_rules_and_their_unit_tests_pass():
    check = _promtool("check", "rules", str(COMMITTED))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 42 rules found" in check.stdout
    tests = sorted(str(p) for p in (ROOT / "tests" / "promtool").glob("*.yml"))
    assert tests
    run = _promtool("test", "rules", *tests)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("SUCCESS") == len(tests)


def test_promtool_unit_tests_cover_both_page_conditions_and_the_ticket():
    doc = yaml.safe_load((ROOT / "tests" / "promtool" / "slo_burn_test.yml").read_text())
    fired = {(t["name"].split(":")[0], a["alertname"]) for t in doc["tests"]
             for a in t["alert_rule_test"] if a["exp_alerts"]}
    assert {("page tier 1", "SLOFastBurn"), ("page tier 2 alone", "SLOFastBurn"),
            ("ticket", "SLOSlowBurn")} <= fired
    silent = {(t["name"].split(":")[0], a["alertname"]) for t in doc["tests"]
              for a in t["alert_rule_test"] if not a["exp_alerts"]}
    assert ("ticket", "SLOFastBurn") in silent and ("steady", "SLOFastBurn") in silent
