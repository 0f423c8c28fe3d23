"""SLO specs and burn-rate tiers as typed settings (sections of :class:`monitor.app.config.Settings`).

A tier's burn-rate threshold is derived from the share of the period's error budget it may
consume (Google SRE Workbook, "Alerting on SLOs"): ``b = budget_share x period / long_window``.

>>> t = BurnRateTier(name="page-1h", severity="page", budget_share=0.02, long_window="1h",
...                  short_window="5m")
>>> t.long_window, t.short_window, t.burn_rate(period_days=30)
(3600, 300, 14.4)
>>> round(t.burn_rate(period_days=28), 2)
13.44
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from monitor.errors import ConfigError

BUCKET_S = 60  # good/total counts are kept per 1-minute event-time bucket
DEFAULTS_PATH = Path(__file__).resolve().parents[2] / "defaults" / "alerting.yaml"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> int:
    """Seconds from ``90``, ``"90s"``, ``"5m"``, ``"1h"``, ``"3d"``, ``"1h30m"``.

    >>> parse_duration("1h30m"), parse_duration(300), parse_duration("3d")
    (5400, 300, 259200)
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    text = str(value).strip()
    parts = re.findall(r"(\d+)([smhdw])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {value!r} (use e.g. 5m, 1h, 3d)")
    return sum(int(n) * _UNITS[u] for n, u in parts)


def format_duration(seconds: int) -> str:
    """The shortest unit spelling: ``300`` -> ``"5m"``, ``259200`` -> ``"3d"``.

    >>> format_duration(300), format_duration(21600), format_duration(90)
    ('5m', '6h', '90s')
    """
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


Duration = Annotated[int, BeforeValidator(parse_duration), Field(gt=0)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@cache
def _defaults() -> Mapping[str, Any]:
    return yaml.safe_load(DEFAULTS_PATH.read_text())


class BurnRateTier(_Spec):
    name: str
    severity: Literal["page", "ticket"]
    #: Share of the period's error budget this tier may see consumed before it fires.
    budget_share: float = Field(gt=0, le=1)
    long_window: Duration
    short_window: Duration

    @model_validator(mode="after")
    def _windows(self) -> BurnRateTier:
        if self.short_window >= self.long_window:
            raise ValueError("short_window must be shorter than long_window")
        if self.long_window % BUCKET_S or self.short_window % BUCKET_S:
            raise ValueError(f"windows must be whole minutes (buckets are {BUCKET_S} s)")
        return self

    def burn_rate(self, period_days: int) -> float:
        """The threshold ``b = budget_share x period / long_window``."""
        return round(self.budget_share * period_days * 86400 / self.long_window, 9)


def _default_tiers() -> tuple[BurnRateTier, ...]:
    return tuple(BurnRateTier(**t) for t in _defaults()["burn_rate"]["tiers"])


class BurnRatePolicy(_Spec):
    """Section ``burn_rate``: tiers for every SLO without its own, and the guards."""

    tiers: tuple[BurnRateTier, ...] = Field(default_factory=_default_tiers, min_length=1)
    min_events: int = Field(default_factory=lambda: _defaults()["burn_rate"]["min_events"], ge=1)
    #: A tier is judged only when its long window could hold this many bad events at the
    #: objective's error rate: ``min_events_for`` scales ``min_events`` up to
    #: ``min_bad_events / (1 - objective)`` (10 / 0.001 = 10,000 events for 99.9 %).
    min_bad_events: float = Field(
        default_factory=lambda: _defaults()["burn_rate"]["min_bad_events"], ge=0)
    evaluation_delay_s: int = Field(
        default_factory=lambda: _defaults()["burn_rate"]["evaluation_delay_s"], ge=0)


class SloSpec(_Spec):
    """One entry of ``slos``: an SLI over one model's events (all versions), optionally a slice."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    model: str
    #: latency: good = latency_ms <= threshold_ms (every event, errors included);
    #: availability: good = status ok; accuracy: good = pred == label over labelled ok events.
    sli: Literal["latency", "availability", "accuracy"]
    threshold_ms: float | None = Field(None, gt=0)
    objective: float = Field(gt=0, lt=1)
    period_days: int = Field(30, ge=1, le=366)
    #: ``attr=value`` conditions joined by commas (``region=us-east,device=cpu``); None = all.
    slice: str | None = None
    #: Override of ``burn_rate.tiers`` for this SLO (e.g. a 90% accuracy SLO).
    tiers: tuple[BurnRateTier, ...] | None = None
    runbook_url: str | None = None

    @field_validator("slice")
    @classmethod
    def _slice(cls, v: str | None) -> str | None:
        if v is not None and v != "all":
            slice_conditions(v)
        return None if v == "all" else v

    @model_validator(mode="after")
    def _threshold(self) -> SloSpec:
        if (self.sli == "latency") != (self.threshold_ms is not None):
            raise ValueError("threshold_ms is required for a latency SLI and only for it")
        return self

    @property
    def slice_name(self) -> str:
        return self.slice or "all"


def slice_conditions(text: str) -> tuple[tuple[str, str], ...]:
    """``"region=eu,device=cpu"`` -> ``(("region", "eu"), ("device", "cpu"))``.

    >>> slice_conditions("region=us-east")
    (('region', 'us-east'),)
    """
    out = []
    for part in text.split(","):
        attr, sep, value = part.partition("=")
        if not sep or not attr.strip() or not value.strip():
            raise ValueError(f"slice must be attr=value[,attr=value]; got {text!r}")
        out.append((attr.strip(), value.strip()))
    return tuple(out)


def check_slos(slos: tuple[SloSpec, ...], policy: BurnRatePolicy) -> None:
    """Reject at start what can never work: duplicate names and tiers that can never fire.

    A tier fires when the error ratio reaches ``b x (1 - objective)``; at ``>= 1`` that needs
    more than 100 % bad events, so the tier is dead (a 90 % accuracy SLO cannot use 14.4x).
    """
    seen: set[str] = set()
    for i, slo in enumerate(slos):
        if slo.name in seen:
            raise ConfigError(f"slos[{i}].name", f"duplicate SLO name {slo.name!r}")
        seen.add(slo.name)
        own = slo.tiers is not None
        for j, tier in enumerate(slo.tiers if own else policy.tiers):
            where = f"slos[{i}].tiers[{j}]" if own else f"burn_rate.tiers[{j}]"
            b = tier.burn_rate(slo.period_days)
            if b * (1 - slo.objective) >= 1:
                raise ConfigError(
                    where, f"tier {tier.name} needs burn rate {b:g} x (1 - {slo.objective:g}) = "
                    f"{b * (1 - slo.objective):.3g} >= 1 for SLO {slo.name}: it can never fire; "
                    f"give slos[{i}] its own tiers with a smaller budget_share or longer window")
            if tier.long_window > slo.period_days * 86400:
                raise ConfigError(where, f"long_window of {tier.name} exceeds the "
                                  f"{slo.period_days}-day period of SLO {slo.name}")


def min_events_for(slo: SloSpec, policy: BurnRatePolicy) -> int:
    """Events a tier's long window must hold before it is judged, scaled to the objective.

    A fixed 100 let 2 bad events in 100 page a 99.9 % SLO (a 2 % error ratio is a 20x burn).
    With ``min_bad_events`` (default 10) the window must be large enough to expect that many
    bad events at the objective's own error rate, so a page rests on a real count of failures.

    >>> p = BurnRatePolicy(min_events=100, min_bad_events=10)
    >>> [min_events_for(SloSpec(name="a", model="m", sli="availability", objective=o), p)
    ...  for o in (0.9, 0.99, 0.995, 0.999)]
    [100, 1000, 2000, 10000]
    """
    return max(policy.min_events, math.ceil(policy.min_bad_events / (1 - slo.objective) - 1e-6))


def tiers_of(slo: SloSpec, policy: BurnRatePolicy) -> tuple[BurnRateTier, ...]:
    return slo.tiers if slo.tiers is not None else policy.tiers
