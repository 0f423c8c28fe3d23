"""Findings -> rule observations, labels, annotations and fingerprints. Pure: no I/O, no clock.

>>> from monitor.contract import Finding, Severity, Status
>>> from monitor.store.keys import WindowKey
>>> from monitor.alerting.settings import AlertRule
>>> rule = AlertRule.model_validate({"name": "SLOFastBurn", "severity": "page",
...     "match": {"detector": "slo_burn_rate", "severity": ["page"]}})
>>> key = WindowKey("slo_burn_rate", "vit", "*", "all", 0)
>>> f = Finding("slo_burn_rate", 1, Status.ALERT, severity=Severity.PAGE, subject="latency")
>>> [(o.identity.subject, o.holds) for o in observe([rule], [(key, f)], lambda *a: [])]
[('latency', True)]
>>> labels = alert_labels(rule, observe([rule], [(key, f)], lambda *a: [])[0].identity)
>>> labels["alertname"], labels["severity"], labels["subject"], fingerprint(labels)
('SLOFastBurn', 'page', 'latency', '04074ca1d24954df')
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlencode

from monitor.alerting.settings import AlertRule, FindingMatch, default_ui_pages
from monitor.alerting.state import INSUFFICIENT, Verdict
from monitor.contract import Finding, Status
from monitor.store.keys import WindowKey

#: Findings that say nothing about health: they reset a pending alert, never fire or resolve one.
UNKNOWN = frozenset({Status.INSUFFICIENT_DATA, Status.NO_REFERENCE})


@dataclass(frozen=True, slots=True)
class Identity:
    """What one alert is about: one problem is one alert."""

    model: str
    model_version: str
    slice: str
    detector: str
    subject: str


@dataclass(frozen=True, slots=True)
class Observation:
    rule: AlertRule
    identity: Identity
    window_start_ms: int
    #: True/False; INSUFFICIENT (insufficient data, no reference); None (a composite rule's
    #: part has not been judged yet)
    holds: Verdict
    findings: tuple[Finding, ...]
    #: The detector's alerting sub-findings of the same key (features, classes, ...): rolled
    #: up into this alert's description, never alerts of their own under the default rules.
    subs: tuple[Finding, ...] = ()


GroupLookup = Callable[[str, str, str, int], Sequence[Finding]]


def selects(m: FindingMatch, key: WindowKey, f: Finding) -> bool:
    """Whether rule condition ``m`` watches this finding (patterns are shell-style)."""
    return all(pattern is None or fnmatchcase(value, pattern) for pattern, value in (
        (m.detector, f.detector), (m.subject, f.subject), (m.model, key.model),
        (m.slice, key.slice)))


def verdict(m: FindingMatch, f: Finding) -> Verdict:
    if f.status.value in m.status:
        return m.severity is None or f.severity.value in m.severity
    return INSUFFICIENT if f.status in UNKNOWN else False


def observe(rules: Sequence[AlertRule], findings: Sequence[tuple[WindowKey, Finding]],
            lookup: GroupLookup) -> list[Observation]:
    """One observation per (rule, identity, window) touched by ``findings``.

    A composite rule (``all_of``) joins the findings of the same model, version, slice and
    window; parts not in ``findings`` come from ``lookup(model, version, slice, window)``."""
    out: list[Observation] = []
    subs: dict[tuple[WindowKey, str], list[Finding]] = {}
    for key, f in findings:
        if f.subject and f.status is Status.ALERT:
            subs.setdefault((key, f.detector), []).append(f)
    for rule in rules:
        if rule.match is not None:
            for key, f in findings:
                if selects(rule.match, key, f):
                    ident = Identity(key.model, key.model_version, key.slice, f.detector, f.subject)
                    rolled = () if f.subject else tuple(subs.get((key, f.detector), ()))
                    out.append(Observation(rule, ident, key.window_start_ms,
                                           verdict(rule.match, f), (f,), rolled))
            continue
        groups = sorted({(k.model, k.model_version, k.slice, k.window_start_ms)
                         for k, f in findings if any(selects(p, k, f) for p in rule.all_of)})
        detector = "+".join(sorted({p.detector or "*" for p in rule.all_of}))
        for model, version, slice_, window in groups:
            key = WindowKey("", model, version, slice_, window)
            group = list(lookup(model, version, slice_, window))
            parts = []
            for p in rule.all_of:
                chosen = [f for f in group if selects(p, key, f)]
                parts.append((chosen[0], verdict(p, chosen[0])) if chosen else (None, None))
            answers = [v for _, v in parts]
            holds: Verdict = (False if False in answers else None if None in answers
                              else INSUFFICIENT if INSUFFICIENT in answers else True)
            out.append(Observation(rule, Identity(model, version, slice_, detector, ""), window,
                                   holds, tuple(f for f, _ in parts if f is not None)))
    return out


def alert_labels(rule: AlertRule, ident: Identity) -> dict[str, str]:
    """The Alertmanager labels: the brief's six, ``subject`` when there is one, and the
    rule's label templates (identity fields only, so the fingerprint is stable)."""
    fields = {"rule": rule.name, **_ident_fields(ident)}
    labels = {"alertname": rule.name, "severity": rule.severity, "model": ident.model,
              "model_version": ident.model_version, "slice": ident.slice,
              "detector": ident.detector}
    if ident.subject:
        labels["subject"] = ident.subject
    for name, template in rule.labels.items():
        labels[name] = template.format_map(_Missing(fields))
    return labels


def fingerprint(labels: Mapping[str, str]) -> str:
    """Stable id of an alert: a hash of its sorted labels."""
    blob = json.dumps(sorted(labels.items()), separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def dashboard_url(base_url: str, ident: Identity, ui_pages: Mapping[str, str],
                  incident_id: int | None = None) -> str:
    """The UI view of an alert: its incident on the On-call page once it has one, else the
    page of its (first) detector (``alerts.ui_pages``)."""
    page = ui_pages.get(ident.detector.split("+")[0], "findings")
    params = {"page": page, "model": ident.model, "version": ident.model_version,
              "slice": ident.slice, "detector": ident.detector}
    if incident_id is not None:
        params = {"page": "oncall", "incident": str(incident_id), **{
            k: v for k, v in params.items() if k != "page"}}
    return f"{base_url.rstrip('/')}/?{urlencode(params)}"


def annotations(obs: Observation, base_url: str, runbook_base_url: str,
                runbook_override: str | None = None,
                ui_pages: Mapping[str, str] | None = None) -> dict[str, str]:
    """Summary, description, runbook and dashboard links (``ui_pages``: default
    ``alerts.ui_pages``)."""
    rule, ident = obs.rule, obs.identity
    head = obs.findings[0] if obs.findings else None
    fields = {"rule": rule.name, **_ident_fields(ident), **_finding_fields(head)}
    summary = (rule.summary or "{rule}: {detector} for {model} {model_version} slice {slice}")
    description = rule.description or describe(obs)
    runbook = (rule.runbook_url or runbook_override or
               f"{runbook_base_url}#{ident.detector.split('+')[0]}")
    return {"summary": summary.format_map(_Missing(fields)),
            "description": description.format_map(_Missing(fields)),
            "runbook_url": runbook,
            "dashboard_url": dashboard_url(base_url, ident,
                                           default_ui_pages() if ui_pages is None else ui_pages),
            "window_start": iso_time(obs.window_start_ms)}


def describe(obs: Observation) -> str:
    """A one-paragraph account of the findings behind an observation, for on-call."""
    parts = []
    for f in obs.findings:
        text = f"{f.detector}{'/' + f.subject if f.subject else ''}: {f.status.value}"
        if f.score is not None and f.threshold is not None:
            text += f", score {f.score:.4g} vs threshold {f.threshold:.4g}"
        if f.p_value is not None:
            text += f", p={f.p_value:.3g}"
        burn = f.details.get("burn_rates") if f.details else None
        if burn:
            text += ", burn " + " ".join(f"{w}={_fmt(b)}x" for w, b in burn.items())
            text += f", error budget left {100 * f.details['error_budget_remaining']:.1f}%"
        verdict_text = f.details.get("verdict") if f.details else None
        if verdict_text:
            text += f", {verdict_text}"
        parts.append(text + f" (n={f.n})")
    if obs.subs:
        names = [f.subject for f in obs.subs]
        parts.append(f"alerting sub-findings ({len(names)}): {', '.join(names[:8])}"
                     + (", ..." if len(names) > 8 else ""))
    window = iso_time(obs.window_start_ms)
    return f"{'; '.join(parts) or 'no finding'} -- window starting {window}"


class _Missing(dict):
    def __missing__(self, key: str) -> str:
        return ""


def _ident_fields(ident: Identity) -> dict[str, Any]:
    return {"model": ident.model, "model_version": ident.model_version, "slice": ident.slice,
            "detector": ident.detector, "subject": ident.subject}


def _finding_fields(f: Finding | None) -> dict[str, Any]:
    if f is None:
        return {}
    return {"status": f.status.value, "severity": f.severity.value, "score": _fmt(f.score),
            "threshold": _fmt(f.threshold), "p_value": _fmt(f.p_value), "n": f.n}


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


def iso_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat().replace("+00:00", "Z")
