"""Settings: one typed object, from a YAML file and ``VITMON_*`` environment variables (env wins).

A bad setting fails at start with one line naming it (:class:`monitor.errors.ConfigError`).
Flat variables from the brief (``VITMON_KAFKA_BOOTSTRAP``, ``VITMON_DATABASE_URL``,
``VITMON_ALERTMANAGER_URL``, ``VITMON_METRICS_PORT``, ...) map to their nested keys through
:data:`ENV_ALIASES`; any other key can be set as ``VITMON_<SECTION>__<KEY>`` (double underscore).

>>> s = load_settings(None, env={"VITMON_KAFKA_CLIENT": "kafka-python",
...                             "VITMON_METRICS_PORT": "9200"})
>>> s.kafka.client, s.metrics.port, s.windows.size_s
('kafka-python', 9200, 300)
>>> load_settings(None, env={"VITMON_KAFKA_CLIENT": "kafka-java"})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
monitor.errors.ConfigError: kafka.client (from VITMON_KAFKA_CLIENT): must be one of ... got 'kafka-java'
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from monitor.alerting.settings import AlertmanagerSettings, AlertSettings
from monitor.alerting.slo.spec import BurnRatePolicy, SloSpec, check_slos
from monitor.app.ui_settings import UISettings
from monitor.core.settings import (
    CheckpointSettings,
    DatabaseSettings,
    IntakeSettings,
    KafkaSettings,
    RetentionSettings,
    Section,
    WindowSettings,
)
from monitor.errors import ConfigError

#: Flat env variables named in the brief -> nested setting path.
ENV_ALIASES: dict[str, str] = {
    "VITMON_KAFKA_BOOTSTRAP": "kafka.bootstrap",
    "VITMON_KAFKA_CLIENT": "kafka.client",
    "VITMON_KAFKA_PARTITIONS": "kafka.partitions",
    "VITMON_DATABASE_URL": "database.url",
    "VITMON_ALERTMANAGER_URL": "alertmanager.url",
    "VITMON_METRICS_PORT": "metrics.port",
    "VITMON_DETECTORS": "detectors.enabled",
    "VITMON_UI_URL": "ui.base_url",
    "VITMON_LOG_LEVEL": "logging.level",
}
#: Sections that moved: old key -> new key. The old keys keep working (deprecated; the new
#: key wins where both set the same setting).
MOVED_SECTIONS: dict[str, tuple[str, ...]] = {
    "fairness": ("detectors", "params", "fairness"),  # the fairness detector's own parameters
    "worst_slices": ("reports", "worst_slices"),  # read only by `vitmon slices discover`
}


class MetricsSettings(Section):
    host: str = "0.0.0.0"
    port: int = Field(9108, ge=0, le=65535)  # 0 = disabled


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class ModelSettings(Section):
    #: Expected CLS embedding dimension, for every version; when absent, each version's comes
    #: from its active reference profile, else from a consensus (``intake.dim_consensus_*``).
    embedding_dim: int | None = Field(None, ge=1)
    baseline_version: str | None = None


class SliceSettings(Section):
    """What slices each event belongs to besides ``all`` (see ``slices/``)."""

    attributes: tuple[str, ...] = ()
    crosses: tuple[tuple[str, ...], ...] = ()
    #: Numeric buckets: field (e.g. ``image.brightness``) -> ascending inner bin edges.
    buckets: Mapping[str, tuple[float, ...]] = Field(default_factory=dict)
    #: Values per attribute with their own slice in a window: the top-K by volume of the
    #: previous window (a heavy-hitters sketch of 4*K counters); the rest fold into ``other``.
    max_values: int = Field(50, ge=1)
    #: A value needs this many events in the previous window to be admitted (a burst of junk
    #: ids, each seen once, ages out).
    min_volume: int = Field(2, ge=1)
    #: Per attribute, the only values that get their own slice (at most ``max_values``).
    allow: Mapping[str, tuple[str, ...]] = Field(default_factory=dict)
    #: Below this many events a slice reports "insufficient data".
    min_samples: int = Field(30, ge=1)
    #: Slice reference warm-up: a slice whose version has a reference but no sub-profile of
    #: its own takes its first window with at least this many events as one (for detectors
    #: that can build it from a window: ``feature_drift``); 0 = off, the slice stays
    #: ``no_reference`` until a reference is captured with it.
    warm_up_events: int = Field(0, ge=0)


class DetectorSettings(Section):
    #: None = every registered detector; else only these names (``VITMON_DETECTORS=a,b``).
    enabled: tuple[str, ...] | None = None
    #: Family-wise significance level per detector and window, corrected across slices.
    alpha: float = Field(0.01, gt=0, lt=1)
    #: Per-detector keyword parameters, passed to the plugin's constructor.
    params: Mapping[str, Mapping[str, Any]] = Field(default_factory=dict)
    #: Per detector, the slice dimensions it runs on besides ``all`` (default: every one). An
    #: embedding detector on every slice copies each embedding once per slice: restrict it.
    slice_dimensions: Mapping[str, tuple[str, ...]] = Field(default_factory=dict)

    @field_validator("enabled", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        if isinstance(v, str):
            return tuple(p.strip() for p in v.split(",") if p.strip())
        return v


class WorstSliceSettings(Section):
    """``vitmon slices discover``: search attribute combinations for the worst slices."""

    #: Attributes searched; empty = every attribute found in the labelled predictions.
    attributes: tuple[str, ...] = ()
    max_order: int = Field(3, ge=1, le=3)  # attributes per combination
    #: Minimum labelled predictions in a slice (support; also the Apriori pruning bound).
    min_support: int = Field(50, ge=1)
    #: Smallest error-rate excess over the overall rate worth reporting.
    min_effect: float = Field(0.02, ge=0, le=1)
    top_k: int = Field(20, ge=1)


class ReportSettings(Section):
    """Settings read only by the on-demand reports (``monitor/reports/``), never by ``run``."""

    worst_slices: WorstSliceSettings = WorstSliceSettings()


class Settings(Section):
    kafka: KafkaSettings = KafkaSettings()
    database: DatabaseSettings = DatabaseSettings()
    windows: WindowSettings = WindowSettings()
    checkpoint: CheckpointSettings = CheckpointSettings()
    metrics: MetricsSettings = MetricsSettings()
    alertmanager: AlertmanagerSettings = AlertmanagerSettings()
    ui: UISettings = UISettings()
    logging: LoggingSettings = LoggingSettings()
    models: Mapping[str, ModelSettings] = Field(default_factory=dict)
    slices: SliceSettings = SliceSettings()
    detectors: DetectorSettings = DetectorSettings()
    slos: tuple[SloSpec, ...] = ()
    burn_rate: BurnRatePolicy = BurnRatePolicy()
    alerts: AlertSettings = AlertSettings()
    retention: RetentionSettings = RetentionSettings()
    intake: IntakeSettings = IntakeSettings()
    reports: ReportSettings = ReportSettings()

    @model_validator(mode="before")
    @classmethod
    def _moved_sections(cls, data: Any) -> Any:
        """Old keys (:data:`MOVED_SECTIONS`) are merged under their new place."""
        if not isinstance(data, dict) or not MOVED_SECTIONS.keys() & data.keys():
            return data
        data = dict(data)
        for old, path in MOVED_SECTIONS.items():
            value = data.pop(old, None)
            if not isinstance(value, Mapping):
                continue
            parent = data
            for part in path[:-1]:
                parent[part] = dict(parent.get(part) or {})
                parent = parent[part]
            parent[path[-1]] = {**value, **(parent.get(path[-1]) or {})}
        return data

    @model_validator(mode="after")
    def _slos_can_fire(self) -> Settings:
        check_slos(self.slos, self.burn_rate)  # raises ConfigError naming the setting
        return self

    def database_url(self) -> str | None:
        """``database.url`` (None: not configured)."""
        return self.database.url.get_secret_value() if self.database.url else None

    def required_database_url(self) -> str:
        """``database.url``, or a :class:`ConfigError` naming it when it is not set."""
        url = self.database_url()
        if url is None:
            raise ConfigError("database.url (VITMON_DATABASE_URL)",
                              "not set; `vitmon run` needs a PostgreSQL URL (`vitmon demo` "
                              "starts an embedded one)")
        return url

    def detector_params(self) -> dict[str, dict[str, Any]]:
        """Constructor parameters per detector (``detectors.params``)."""
        return {k: dict(v) for k, v in self.detectors.params.items()}


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read YAML (if given), overlay ``VITMON_*`` variables, validate; raise ConfigError."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    if path is None and env.get("VITMON_CONFIG"):
        path = env["VITMON_CONFIG"]
    if path is not None:
        data = _read_yaml(Path(path))
    sources: dict[str, str] = {}
    for name, value in env.items():
        key = ENV_ALIASES.get(name)
        if key is None and name.startswith("VITMON_") and "__" in name:
            key = name[len("VITMON_"):].lower().replace("__", ".")
        if key is None:
            continue
        _set_path(data, key.split("."), _env_value(name, value))
        sources[key] = name
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise _one_line(exc, sources) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError("config", f"cannot read {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError("config", f"{path}{where} is not valid YAML") from None
    if not isinstance(data, dict):
        raise ConfigError("config", f"{path} must contain a mapping of settings")
    return data


def _env_value(name: str, value: str) -> Any:
    """Lists and mappings in env variables are written as YAML flow (``[a, b]``, ``{k: v}``)."""
    if value.strip()[:1] in "[{" and value.strip():
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(name, "is not a valid YAML list or mapping") from None
    return value


def _set_path(data: dict[str, Any], parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        nested = data.get(part)
        if not isinstance(nested, dict):
            nested = data[part] = {}
        data = nested
    data[parts[-1]] = value


def _one_line(exc: ValidationError, sources: Mapping[str, str]) -> ConfigError:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"] if not isinstance(p, int))
    origin = f" (from {sources[key]})" if key in sources else ""
    if err["type"] == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        msg = f"must be one of {expected.replace(' or ', ', ')}; got {err['input']!r}"
    elif err["type"] == "extra_forbidden":
        msg = "unknown setting"
    else:
        msg = err["msg"].lower()
        if "input" in err and not isinstance(err["input"], (dict, list)):
            msg += f"; got {err['input']!r}"
    return ConfigError(f"{key}{origin}", msg)
