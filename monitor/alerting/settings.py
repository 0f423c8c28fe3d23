"""Alert rules and maintenance windows as typed settings (section ``alerts``).

Defaults come from ``monitor/defaults/alerting.yaml``; a configured ``alerts.rules`` replaces them.

>>> s = AlertSettings()
>>> [r.name for r in s.rules if r.severity == "page"]
['SLOFastBurn', 'RollbackRecommended', 'SevereRegression', 'OutOfMemorySpike']
>>> AlertRule.model_validate({"name": "X", "severity": "page", "for": 3,
...                           "match": {"detector": "slo_burn_rate"}}).for_windows
3
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from monitor.alerting.slo.spec import _defaults

FindingStatus = Literal["ok", "warn", "alert", "insufficient_data", "no_reference"]
FindingSeverity = Literal["none", "ticket", "page"]
#: Fields a label or annotation template may use. Labels should use identity fields only, so
#: the fingerprint (a hash of the labels) stays stable for one problem.
TEMPLATE_FIELDS = frozenset({"rule", "model", "model_version", "slice", "detector", "subject",
                             "status", "severity", "score", "threshold", "p_value", "n"})


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class FindingMatch(_Section):
    """Which findings a rule watches (``detector``/``subject``/``model``/``slice``: shell-style
    patterns; None = any) and when they count as bad (``status`` and ``severity``)."""

    detector: str | None = None
    subject: str | None = None
    model: str | None = None
    slice: str | None = None
    status: tuple[FindingStatus, ...] = ("alert",)
    severity: tuple[FindingSeverity, ...] | None = None  # None = any


class AlertRule(_Section):
    #: The ``alertname`` label.
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    severity: Literal["page", "ticket"]
    #: One condition, or ``all_of``: every condition must hold for the same model, version,
    #: slice and window (e.g. latency burn AND error burn).
    match: FindingMatch | None = None
    all_of: tuple[FindingMatch, ...] = ()
    #: Consecutive evaluated windows the condition must hold before the alert fires.
    for_windows: int = Field(1, alias="for", ge=1)
    labels: Mapping[str, str] = Field(default_factory=dict)
    summary: str | None = None
    description: str | None = None
    runbook_url: str | None = None

    @model_validator(mode="after")
    def _one_condition(self) -> AlertRule:
        if (self.match is None) == (not self.all_of):
            raise ValueError("give either match or all_of")
        if self.all_of and len(self.all_of) < 2:
            raise ValueError("all_of needs at least two conditions")
        for text in [*self.labels.values(), self.summary or "", self.description or ""]:
            unknown = {f for _, f, _, _ in string.Formatter().parse(text) if f} - TEMPLATE_FIELDS
            if unknown:
                raise ValueError(f"unknown template field(s) {sorted(unknown)}; "
                                 f"use {sorted(TEMPLATE_FIELDS)}")
        reserved = {"alertname", "severity", "model", "model_version", "slice", "detector"}
        if reserved & set(self.labels):
            raise ValueError(f"labels may not override {sorted(reserved & set(self.labels))}")
        return self

    @property
    def conditions(self) -> tuple[FindingMatch, ...]:
        return (self.match,) if self.match is not None else self.all_of


class MaintenanceWindow(_Section):
    """Suppresses matching alerts while the finding's event time is in ``[start, end)``."""

    name: str
    start: AwareDatetime
    end: AwareDatetime
    models: tuple[str, ...] = ()  # empty = every model
    alertnames: tuple[str, ...] = ()  # empty = every rule
    severities: tuple[Literal["page", "ticket"], ...] = ()  # empty = both

    @model_validator(mode="after")
    def _order(self) -> MaintenanceWindow:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self

    def covers(self, window_ms: int, model: str, alertname: str, severity: str) -> bool:
        t = datetime.fromtimestamp(window_ms / 1000, tz=self.start.tzinfo)
        return (self.start <= t < self.end and (not self.models or model in self.models)
                and (not self.alertnames or alertname in self.alertnames)
                and (not self.severities or severity in self.severities))


def _default_rules() -> tuple[AlertRule, ...]:
    return tuple(AlertRule.model_validate(r) for r in _defaults()["alerts"]["rules"])


def default_ui_pages() -> dict[str, str]:
    return dict(_defaults()["alerts"]["ui_pages"])


class AlertSettings(_Section):
    rules: tuple[AlertRule, ...] = Field(default_factory=_default_rules)
    maintenance: tuple[MaintenanceWindow, ...] = ()
    #: runbook_url of rules without their own: this URL + "#" + the detector name.
    runbook_base_url: str = "https://github.com/vitmon/vitmon/blob/main/docs/alerting.md"
    #: UI page of an alert's ``dashboard_url`` per detector (others: ``findings``); an alert
    #: that belongs to an incident links to it on the On-call page instead.
    ui_pages: Mapping[str, str] = Field(default_factory=default_ui_pages)
    #: A holding slice A explains a larger holding slice B (same rule, detector, window) when
    #: B contains A by name or at least this share of A's events in the window are in B (a
    #: camera sits in one region: 100 %; a broken camera's events split 70/30 over two groups).
    explain_share: float = Field(0.25, gt=0.0, le=1.0)
    #: ... unless two or more explaining slices of one dimension hold at least this share of
    #: B's events: a broad cause (a bad canary moves every camera); then B carries them.
    broad_share: float = Field(0.5, gt=0.0, le=1.0)

    @field_validator("rules")
    @classmethod
    def _unique(cls, v: tuple[AlertRule, ...]) -> tuple[AlertRule, ...]:
        names = [r.name for r in v]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate rule names {sorted(dup)}")
        return v


def default_settings() -> Mapping[str, Any]:
    """The packaged defaults, for docs and tests."""
    return _defaults()


class AlertmanagerSettings(_Section):
    url: str | None = None
    #: Firing alerts are re-sent this often, with endsAt `ends_at_intervals` intervals ahead
    #: (as Prometheus does), so Alertmanager resolves them itself if vitmon goes away.
    resend_interval_s: float = Field(60.0, gt=0)
    ends_at_intervals: int = Field(4, ge=2)
    #: Resolved alerts are re-sent (endsAt = resolution time) for this long (Prometheus: 15 min).
    resolved_resend_s: float = Field(900.0, ge=0)
    timeout_s: float = Field(5.0, gt=0)
    #: Backoff while Alertmanager is unreachable: initial, doubling up to max.
    retry_initial_s: float = Field(1.0, gt=0)
    retry_max_s: float = Field(60.0, gt=0)
    poll_s: float = Field(1.0, gt=0)
