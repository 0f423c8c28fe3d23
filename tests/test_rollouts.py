"""The automated rollback hook: ``vitmon_version_health{model,baseline,canary,verdict}`` set after
each commit from the version comparisons (any detector with the VersionComparator ability), and
the Argo Rollouts / Flagger templates in deploy/rollouts/ whose queries select it -- evaluated by
the real ``promtool test rules`` on the samples the registry exports."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import ClassVar

import pytest
import yaml
from prometheus_client import CollectorRegistry

from monitor.alerting import comparisons
from monitor.alerting.comparisons import VersionComparisonHook
from monitor.alerting.wiring import wire
from monitor.contract import Finding, Status
from monitor.core.checkpoint import AfterCommitHook, CheckpointResult
from monitor.core.metrics import VERDICTS, Metrics
from monitor.store.keys import WindowKey
from tests.promql_support import PROMTOOL, exported, promtool_check, unknown

ROOT = Path(__file__).resolve().parents[1]
ARGO = yaml.safe_load((ROOT / "deploy/rollouts/argo-analysis-template.yaml").read_text())
FLAGGER = yaml.safe_load((ROOT / "deploy/rollouts/flagger-metric-template.yaml").read_text())
WINDOW = 600_000


class ToyComparator:
    """Compares versions by one number per state: the canary regresses when it is larger."""

    name: ClassVar[str] = "toy_compare"
    version: ClassVar[int] = 1

    def compare_versions(self, candidate, baseline, baseline_version, context) -> Finding:
        if candidate is None:
            return Finding(self.name, 1, Status.INSUFFICIENT_DATA, subject=f"vs {baseline_version}")
        worse = candidate > baseline
        return Finding(self.name, 1, Status.ALERT if worse else Status.OK,
                       subject=f"vs {baseline_version}")


class _Stored:
    def __init__(self, version: str, slice_: str, state) -> None:
        self.key = WindowKey("toy_compare", "m", version, slice_, 0)
        self.state = state


def _commit(hook: VersionComparisonHook, states: dict[tuple[str, str], object],
            monkeypatch: pytest.MonkeyPatch, window: int = 0) -> None:
    """One checkpoint whose findings touch every canary in ``states`` (store calls stubbed)."""
    stored = [_Stored(v, s, x) for (v, s), x in states.items()]
    monkeypatch.setattr(comparisons.window_states, "load_states", lambda *a, **k: stored)
    monkeypatch.setattr(comparisons, "upsert_findings", lambda conn, rows: None)
    monkeypatch.setattr(comparisons, "revisions", lambda conn, keys, subject: {})
    result = CheckpointResult(findings=[
        (WindowKey("toy_compare", "m", v, s, window), Finding("toy_compare", 1, Status.OK))
        for v, s in states if v != "1"])
    hook.before_commit(None, result)
    hook.after_commit(result)


def _health(metrics: Metrics, canary: str) -> dict[str, float | None]:
    return {v: metrics.registry.get_sample_value(
        "vitmon_version_health", {"model": "m", "baseline": "1", "canary": canary, "verdict": v})
        for v in VERDICTS}


@pytest.fixture
def metrics_after_commits(monkeypatch: pytest.MonkeyPatch) -> Metrics:
    metrics = Metrics(CollectorRegistry())
    hook = VersionComparisonHook(ToyComparator(), {"m": "1"}, 0.05, 10, WINDOW, metrics)
    # canary 2 regresses on one slice of two; canary 3 is fine; canary 4 lacks data
    _commit(hook, {("1", "all"): 5, ("1", "cam-1"): 5, ("2", "all"): 5, ("2", "cam-1"): 9,
                   ("3", "all"): 4, ("4", "all"): None}, monkeypatch)
    return metrics


def test_verdicts_become_the_metric_after_the_commit(metrics_after_commits: Metrics) -> None:
    assert _health(metrics_after_commits, "2") == {"rollback": 1.0, "healthy": 0.0,
                                                   "insufficient_data": 0.0}
    assert _health(metrics_after_commits, "3") == {"rollback": 0.0, "healthy": 1.0,
                                                   "insufficient_data": 0.0}
    assert _health(metrics_after_commits, "4")["insufficient_data"] == 1.0
    assert _health(metrics_after_commits, "1")["rollback"] is None  # the baseline never


def test_a_newer_window_wins_and_a_late_look_at_an_older_one_does_not(
        monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = Metrics(CollectorRegistry())
    hook = VersionComparisonHook(ToyComparator(), {"m": "1"}, 0.05, 10, WINDOW, metrics)
    _commit(hook, {("1", "all"): 5, ("2", "all"): 9}, monkeypatch, window=WINDOW)
    assert _health(metrics, "2")["rollback"] == 1.0
    _commit(hook, {("1", "all"): 5, ("2", "all"): 1}, monkeypatch, window=0)  # late labels
    assert _health(metrics, "2")["rollback"] == 1.0
    _commit(hook, {("1", "all"): 5, ("2", "all"): 1}, monkeypatch, window=2 * WINDOW)
    assert _health(metrics, "2") == {"rollback": 0.0, "healthy": 1.0, "insufficient_data": 0.0}


def test_the_wiring_hands_the_metrics_to_every_comparator() -> None:
    from monitor.alerting.settings import AlertSettings
    from monitor.alerting.slo.spec import BurnRatePolicy

    metrics = Metrics(CollectorRegistry())
    alerting = wire([ToyComparator()], metrics, alerts=AlertSettings(), slos=(),
                    burn_rate=BurnRatePolicy(), baselines={"m": "1", "other": None}, alpha=0.05,
                    min_samples=10, window_size_ms=WINDOW, ui_base_url="http://ui")
    (hook,) = [h for h in alerting.first if isinstance(h, VersionComparisonHook)]
    assert hook.metrics is metrics and isinstance(hook, AfterCommitHook)


def _argo_query(model: str, canary: str) -> str:
    (metric,) = ARGO["spec"]["metrics"]
    q = metric["provider"]["prometheus"]["query"]
    return q.replace("{{args.model}}", model).replace("{{args.canary-version}}", canary)


def _flagger_query(model: str, canary: str) -> str:
    q = FLAGGER["spec"]["query"]
    return q.replace("{{ variables.model }}", model).replace("{{ variables.canary }}", canary)


def test_templates_are_what_the_rollout_controllers_read() -> None:
    assert (ARGO["apiVersion"], ARGO["kind"]) == ("argoproj.io/v1alpha1", "AnalysisTemplate")
    assert {a["name"] for a in ARGO["spec"]["args"]} >= {"model", "canary-version"}
    (metric,) = ARGO["spec"]["metrics"]
    assert metric["failureLimit"] == 0 and metric["failureCondition"] == "result[0] >= 1"
    assert metric["successCondition"] == "result[0] == 0"
    assert (FLAGGER["apiVersion"], FLAGGER["kind"]) == ("flagger.app/v1beta1", "MetricTemplate")
    assert FLAGGER["spec"]["provider"]["type"] == "prometheus"
    for query in (ARGO_RAW := metric["provider"]["prometheus"]["query"], FLAGGER["spec"]["query"]):
        assert re.findall(r"\{\{[^}]*\}\}", query), "the model and canary come from the rollout"
    assert "{{args.model}}" in ARGO_RAW


@pytest.mark.parametrize("query", [_argo_query, _flagger_query], ids=["argo", "flagger"])
def test_queries_select_the_exported_metric(query) -> None:
    q = query("m", "2")
    assert unknown(q, exported()) == []
    assert 'verdict="rollback"' in q and "vitmon_version_health" in q


def _series(metrics: Metrics) -> list[dict[str, str]]:
    out = []
    for fam in metrics.registry.collect():
        for s in fam.samples:
            if s.name == "vitmon_version_health":
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                out.append({"series": f"{s.name}{{{labels}}}", "values": f"{s.value:g}x10"})
    return out


@pytest.mark.parametrize("query", [_argo_query, _flagger_query], ids=["argo", "flagger"])
def test_promtool_evaluates_the_queries_on_exported_samples(
        query, metrics_after_commits: Metrics, tmp_path: Path) -> None:
    """1 (rollback) for the regressed canary, 0 for the healthy one, the one without enough
    data and a version vitmon has never seen -- on the registry's own samples."""
    checked = promtool_check({"q": query("m", "2")}, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    cases = {"2": 1, "3": 0, "4": 0, "9.9.9": 0}
    tests = [{"expr": query("m", canary), "eval_time": "5m",
              "exp_samples": [{"labels": "{}", "value": value}]}
             for canary, value in cases.items()]
    (tmp_path / "empty.rules.yml").write_text("groups: []\n")
    spec = {"rule_files": ["empty.rules.yml"], "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": _series(metrics_after_commits),
                       "promql_expr_test": tests}]}
    path = tmp_path / "rollback_test.yml"
    path.write_text(yaml.safe_dump(spec))
    out = subprocess.run([PROMTOOL, "test", "rules", path.name], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
