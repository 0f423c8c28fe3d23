"""PromQL in deploy/ files checked against what vitmon exports, without a Prometheus server.

:func:`exported` reads the metric names (as Prometheus stores them: ``_total`` for counters,
``_bucket``/``_sum``/``_count`` for histograms) and their label names from the registry of
``monitor.core.metrics.Metrics``, so a renamed metric breaks the dashboards' tests, not the
dashboards. :func:`selectors` finds the metrics a query names with the labels it matches on;
:func:`promtool_check` has ``promtool check rules`` parse the queries.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from monitor.core.metrics import Metrics

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
             "summary": ("_sum", "_count"), "gauge": ("",), "info": ("_info",)}
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
             "unless", "offset", "le", "inf", "nan"}


def exported() -> dict[str, frozenset[str]]:
    """Every sample name vitmon's registry exports -> its label names."""
    metrics = Metrics(CollectorRegistry())
    out: dict[str, frozenset[str]] = {}
    for collector in metrics.registry._collector_to_names:  # the registered metric objects
        labels = frozenset(getattr(collector, "_labelnames", ()))
        kind = collector._type
        for fam in collector.describe():
            for suffix in _SUFFIXES[kind]:
                extra = {"le"} if suffix == "_bucket" else set()
                out[fam.name + suffix] = labels | extra
    return out


def grafana_vars(expr: str) -> str:
    """Grafana's variables replaced as a panel would send the query (all values selected)."""
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
    return re.sub(r"\$\{?(\w+)\}?", ".*", expr)


def selectors(expr: str) -> tuple[list[tuple[str, set[str]]], set[str]]:
    """The metrics a query names, each with the labels its own matchers use, and the labels the
    query groups or matches on (``by``, ``without``, ``on``, ``ignoring``, ``group_*``).

    >>> selectors('sum by (reason) (rate(vitmon_events_rejected_total{topic="t"}[5m])) > up')
    ([('vitmon_events_rejected_total', {'topic'}), ('up', set())], {'reason'})
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # no identifiers inside strings
    grouping = r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)"
    grouped = {lab for group in re.findall(grouping, text) for lab in re.findall(r"\w+", group)}
    text = re.sub(grouping, " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery durations
    found: list[tuple[str, set[str]]] = []
    for m in re.finditer(r"([a-zA-Z_:][\w:]*)\s*(\{[^}]*\})?\s*(\()?", text):
        name, matchers, call = m.group(1), m.group(2), m.group(3)
        if call or name.lower() in _KEYWORDS or re.fullmatch(r"\d+\w*", name):
            continue
        found.append((name, set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers or ""))))
    return found, grouped


def unknown(expr: str, metrics: dict[str, frozenset[str]]) -> list[str]:
    """What in ``expr`` vitmon does not export: metric names, labels a metric lacks, grouping
    labels none of the query's metrics has. Empty when the query is sound."""
    found, grouped = selectors(expr)
    problems = [name for name, _ in found if name not in metrics]
    for name, labels in found:
        problems += [f"{name}{{{lab}}}" for lab in sorted(labels - metrics.get(name, frozenset()))]
    have = set().union(*(metrics.get(n, frozenset()) for n, _ in found))
    problems += [f"by ({lab})" for lab in sorted(grouped - have)]
    if not found:
        problems.append("names no metric")
    return problems


def promtool_check(exprs: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    """``promtool check rules`` on the queries as recording rules: PromQL syntax and types."""
    rules = [{"record": f"vitmon:check:{i}", "expr": e} for i, e in enumerate(exprs.values())]
    path = tmp_path / "queries.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "queries", "rules": rules}]}))
    return subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True,
                          text=True, timeout=120)
