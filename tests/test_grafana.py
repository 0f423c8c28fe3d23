"""The provisioned Grafana dashboard (deploy/grafana/): its JSON, its Prometheus data source, and
that every metric and label its queries name is one vitmon exports (read from the registry of
``monitor.core.metrics``), with the queries parsed by the real ``promtool``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.promql_support import exported, grafana_vars, promtool_check, unknown

ROOT = Path(__file__).resolve().parents[1]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = json.loads((GRAFANA / "dashboards" / "vitmon.json").read_text())
PANELS = [p for p in DASHBOARD["panels"] if p["type"] != "row"]
QUERIES = {f"{p['title']}/{t['refId']}": t["expr"] for p in PANELS for t in p["targets"]}
METRICS = exported()


def test_dashboard_json_is_a_grafana_dashboard() -> None:
    assert DASHBOARD["uid"] == "vitmon-overview" and DASHBOARD["title"] == "vitmon"
    assert isinstance(DASHBOARD["schemaVersion"], int) and DASHBOARD["schemaVersion"] >= 36
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in PANELS:
        grid = p["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, p["title"]
        assert p["type"] in {"timeseries", "stat", "bargauge", "table", "gauge"}, p["title"]
        assert p["description"] and p["targets"], p["title"]
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]


def test_dashboard_covers_what_on_call_watches() -> None:
    by_metric: dict[str, list[str]] = {}
    for title, expr in QUERIES.items():
        for name in re.findall(r"vitmon_\w+", expr):
            by_metric.setdefault(name, []).append(title)
    for metric in ("vitmon_events_total", "vitmon_consumer_lag", "vitmon_events_rejected_total",
                   "vitmon_slo_burn_rate", "vitmon_drift_score", "vitmon_alerts_firing",
                   "vitmon_version_health"):
        assert metric in by_metric, f"no panel shows {metric}"
    burn = next(e for t, e in QUERIES.items() if "vitmon_slo_burn_rate" in e)
    assert "{{window}}" in json.dumps(DASHBOARD) and "slo" in burn  # one line per SLO and window
    rejects = next(e for e in QUERIES.values() if "vitmon_events_rejected_total" in e)
    assert "by (reason)" in rejects


@pytest.mark.parametrize("title", sorted(QUERIES))
def test_every_query_names_exported_metrics_and_labels(title: str) -> None:
    assert unknown(grafana_vars(QUERIES[title]), METRICS) == []


def test_template_variables_read_exported_labels() -> None:
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("model", "version", "slo"):
        m = re.fullmatch(r"label_values\((\w+)(\{.*\})?, (\w+)\)", variables[name]["definition"])
        assert m, variables[name]["definition"]
        assert m.group(3) in METRICS[m.group(1)], name
        used = [e for e in QUERIES.values() if f"${name}" in e]
        assert used, f"variable ${name} is used by no panel"


def test_a_query_with_a_foreign_metric_or_label_is_caught() -> None:
    assert unknown('rate(vitmon_events_total{topic="x"}[5m])', METRICS) == []
    assert unknown("rate(vitmon_event_total[5m])", METRICS) == ["vitmon_event_total"]
    assert unknown('vitmon_slo_burn_rate{model="m"}', METRICS) == ["vitmon_slo_burn_rate{model}"]
    assert unknown("sum by (reason) (vitmon_consumer_lag)", METRICS) == ["by (reason)"]
    assert unknown("up", METRICS) == ["up"]


def test_promtool_parses_every_query(tmp_path: Path) -> None:
    out = promtool_check({t: grafana_vars(e) for t, e in QUERIES.items()}, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(QUERIES)} rules found" in out.stdout


def test_provisioning_points_grafana_at_prometheus_and_the_dashboards() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = ds["datasources"]
    assert source["type"] == "prometheus" and source["uid"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "vitmon.yml")
                              .read_text())["providers"][0]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["grafana"]
    mounts = dict(m.split(":")[:2] for m in compose["volumes"] if m.startswith("./"))
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert compose["depends_on"]["prometheus"]
