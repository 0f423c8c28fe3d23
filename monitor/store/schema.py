"""PostgreSQL schema (SQLAlchemy 2 declarative models). Migrations in ``migrations/`` create it.

Times are epoch milliseconds (``*_ms`` BIGINT) for event time, ``timestamptz`` for wall time.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, REAL
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Prediction(Base):
    """Accepted predictions, kept for the label join until the label horizon passes: compact
    (slices and attributes as ``prediction_terms`` ids, REAL floats) and partitioned by event
    time, one partition per UTC day (``monitor.store.predictions``), dropped whole by retention.
    The primary key makes a duplicate ``event_id`` (with its original ``ts``) count once."""

    __tablename__ = "predictions"
    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    ts_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    model: Mapped[str] = mapped_column(Text, nullable=False)
    model_version: Mapped[str] = mapped_column(Text, nullable=False)
    window_start_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    pred: Mapped[int] = mapped_column(Integer, nullable=False)  # -1 for error events
    confidence: Mapped[float | None] = mapped_column(REAL)
    is_error: Mapped[bool] = mapped_column(Boolean, nullable=False)
    latency_ms: Mapped[float] = mapped_column(REAL, nullable=False)
    slice_ids: Mapped[list[int]] = mapped_column(ARRAY(Integer), nullable=False)
    attr_ids: Mapped[list[int]] = mapped_column(ARRAY(Integer), nullable=False)
    input_sha256: Mapped[str | None] = mapped_column(Text)
    sample_uri: Mapped[str | None] = mapped_column(Text)
    kafka_partition: Mapped[int] = mapped_column(Integer, nullable=False)
    kafka_offset: Mapped[int] = mapped_column(BigInteger, nullable=False)
    __table_args__ = (Index("ix_predictions_model_ts", "model", "model_version", "ts_ms"),
                      {"postgresql_partition_by": "RANGE (ts_ms)"})


class PredictionTerm(Base):
    """Slice names and ``attribute=value`` pairs by id (``monitor.store.terms``)."""

    __tablename__ = "prediction_terms"
    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    term: Mapped[str] = mapped_column(Text, nullable=False)
    __table_args__ = (Index("uq_prediction_terms_term", "term", unique=True),)


class Label(Base):
    """Ground truth by ``event_id``; the last label received wins."""

    __tablename__ = "labels"
    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    label: Mapped[int] = mapped_column(Integer, nullable=False)
    ts_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    source: Mapped[str | None] = mapped_column(Text)
    kafka_partition: Mapped[int] = mapped_column(Integer, nullable=False)
    kafka_offset: Mapped[int] = mapped_column(BigInteger, nullable=False)
    received_at: Mapped[datetime] = _now()


class RejectedEvent(Base):
    """Every record that failed validation, with its original bytes and the reason."""

    __tablename__ = "rejected_events"
    topic: Mapped[str] = mapped_column(Text, primary_key=True)
    kafka_partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    kafka_offset: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    detail: Mapped[str] = mapped_column(Text, nullable=False)
    event_id: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(Text)
    model_version: Mapped[str | None] = mapped_column(Text)
    message_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = _now()
    __table_args__ = (Index("ix_rejected_reason", "reason"),
                      Index("ix_rejected_received_at", "received_at"))


class ConsumerOffset(Base):
    """Next offset to read per partition, committed in the same transaction as the results."""

    __tablename__ = "consumer_offsets"
    consumer_group: Mapped[str] = mapped_column(Text, primary_key=True)
    topic: Mapped[str] = mapped_column(Text, primary_key=True)
    kafka_partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger, nullable=False)
    watermark_ms: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    high_watermark: Mapped[int | None] = mapped_column(BigInteger)  # last seen log end, for lag
    updated_at: Mapped[datetime] = _now()
    #: +1 at every claim (assignment); a checkpoint commits only under the epoch it claimed.
    owner_epoch: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))
    owner: Mapped[str | None] = mapped_column(Text)  # host:pid of the claiming process


class WindowState(Base):
    """Detector state per (detector, model, version, slice, window): every checkpoint merges
    its delta in, so several processes on disjoint partitions add up to one."""

    __tablename__ = "window_states"
    detector: Mapped[str] = mapped_column(Text, primary_key=True)
    model: Mapped[str] = mapped_column(Text, primary_key=True)
    model_version: Mapped[str] = mapped_column(Text, primary_key=True)
    slice: Mapped[str] = mapped_column(Text, primary_key=True)
    window_start_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    window_end_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    detector_version: Mapped[int] = mapped_column(Integer, nullable=False)
    n_events: Mapped[int] = mapped_column(BigInteger, nullable=False)
    state: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    dirty: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)  # not yet evaluated
    updated_at: Mapped[datetime] = _now()
    __table_args__ = (Index("ix_window_states_window", "window_start_ms"),
                      Index("ix_window_states_dirty", "dirty", "window_end_ms"),
                      Index("ix_window_states_end", "window_end_ms"))  # retention


class FindingRow(Base):
    """The latest evaluation of each (detector, key, subject); ``revision`` counts re-evaluations."""

    __tablename__ = "findings"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    detector: Mapped[str] = mapped_column(Text, nullable=False)
    detector_version: Mapped[int] = mapped_column(Integer, nullable=False)
    model: Mapped[str] = mapped_column(Text, nullable=False)
    model_version: Mapped[str] = mapped_column(Text, nullable=False)
    slice: Mapped[str] = mapped_column(Text, nullable=False)
    window_start_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    window_end_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    subject: Mapped[str] = mapped_column(Text, nullable=False, default="")
    status: Mapped[str] = mapped_column(Text, nullable=False)
    severity: Mapped[str] = mapped_column(Text, nullable=False)
    test: Mapped[str] = mapped_column(Text, nullable=False, default="")
    score: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    p_value: Mapped[float | None] = mapped_column(Float)
    n: Mapped[int] = mapped_column(BigInteger, nullable=False)
    details: Mapped[dict] = mapped_column(JSONB, nullable=False)
    revision: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    evaluated_at: Mapped[datetime] = _now()
    __table_args__ = (
        Index("uq_findings_key", "detector", "model", "model_version", "slice",
              "window_start_ms", "subject", unique=True),
        Index("ix_findings_window", "window_start_ms"),
        Index("ix_findings_status", "status", "window_start_ms"),
        Index("ix_findings_evaluated_at", "evaluated_at"),
        Index("ix_findings_window_end", "window_end_ms"),  # retention
    )


class CatalogEntry(Base):
    """Learnt facts of releases before migration 0005 (``kind``, ``name``, ``value``): nothing
    reads or writes it any more. Decided embedding dimensions per version and admitted slice
    values have their own tables since then (``embedding_dims``, ``slice_admissions``); the
    table stays so that a migration does not drop data someone may want to look at."""

    __tablename__ = "catalog"
    kind: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[str] = mapped_column(Text, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), nullable=False)  # admission order


class IngestCount(Base):
    """Accepted and duplicate events per model version, maintained by every checkpoint (the
    predictions table is pruned after the label horizon; these totals are not)."""

    __tablename__ = "ingest_counts"
    model: Mapped[str] = mapped_column(Text, primary_key=True)
    model_version: Mapped[str] = mapped_column(Text, primary_key=True)
    accepted: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    updated_at: Mapped[datetime] = _now()


class ReferenceProfile(Base):
    """A versioned reference profile for one model version (bin edges, class frequencies, an
    embedding sample, ...); detectors compare windows against the active one."""

    __tablename__ = "reference_profiles"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(Text, nullable=False)
    model_version: Mapped[str] = mapped_column(Text, nullable=False)
    source: Mapped[str] = mapped_column(Text, nullable=False)  # "file:..." or "range:T1..T2"
    n_events: Mapped[int] = mapped_column(BigInteger, nullable=False)
    profile: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)  # codec.pack_value
    summary: Mapped[dict] = mapped_column(JSONB, nullable=False)  # what `reference show` prints
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = _now()
    __table_args__ = (
        Index("ix_reference_model", "model", "model_version"),
        Index("uq_reference_active", "model", "model_version", unique=True,
              postgresql_where=text("active")),
    )


# -- SLOs and alerts (migration 0003) ---------------------------------------------------------
class SloBucket(Base):
    """Good and total events of one SLO per 1-minute event-time bucket, added to by every
    checkpoint (and by label arrivals for accuracy SLOs): burn rates over 5 min..3 days and the
    error budget over the period are exact sums of these, and survive restarts."""

    __tablename__ = "slo_buckets"
    slo: Mapped[str] = mapped_column(Text, primary_key=True)
    bucket_start_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    good: Mapped[int] = mapped_column(BigInteger, nullable=False)
    total: Mapped[int] = mapped_column(BigInteger, nullable=False)


class SloProgress(Base):
    """Event time up to which each SLO has been judged (one finding per judged minute)."""

    __tablename__ = "slo_progress"
    slo: Mapped[str] = mapped_column(Text, primary_key=True)
    evaluated_to_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at: Mapped[datetime] = _now()


class AlertRow(Base):
    """One alert (one occurrence of one fingerprint): rule state and Alertmanager delivery
    state. At most one open (pending/firing/suppressed/explained) alert per fingerprint.
    ``explained_by``: the more specific slice whose alert carries this one (migration 0004)."""

    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(Text, nullable=False)
    rule: Mapped[str] = mapped_column(Text, nullable=False)
    severity: Mapped[str] = mapped_column(Text, nullable=False)
    #: pending | firing | suppressed | explained | resolved
    state: Mapped[str] = mapped_column(Text, nullable=False)
    labels: Mapped[dict] = mapped_column(JSONB, nullable=False)
    annotations: Mapped[dict] = mapped_column(JSONB, nullable=False)
    consecutive: Mapped[int] = mapped_column(Integer, nullable=False)
    last_window_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)  # event time
    first_window_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    fired_window_ms: Mapped[int | None] = mapped_column(BigInteger)
    resolved_window_ms: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = _now()
    fired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # startsAt
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # endsAt
    updated_at: Mapped[datetime] = _now()
    last_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_sent_state: Mapped[str | None] = mapped_column(Text)  # firing|resolved
    sent_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    send_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # failures in a row
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    incident_id: Mapped[int | None] = mapped_column(BigInteger)
    explained_by_alert_id: Mapped[int | None] = mapped_column(BigInteger)
    explained_by: Mapped[str | None] = mapped_column(Text)  # e.g. "camera_id=cam-03"
    __table_args__ = (
        Index("uq_alerts_open_fingerprint", "fingerprint", unique=True, postgresql_where=text(
            "state IN ('pending', 'firing', 'suppressed', 'explained')")),
        Index("ix_alerts_state", "state", "updated_at"),
        Index("ix_alerts_incident", "incident_id"),
    )


class AlertTransition(Base):
    """Every state change of every alert, in order (the alert history)."""

    __tablename__ = "alert_transitions"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    fingerprint: Mapped[str] = mapped_column(Text, nullable=False)
    from_state: Mapped[str] = mapped_column(Text, nullable=False)  # "inactive" for a new alert
    to_state: Mapped[str] = mapped_column(Text, nullable=False)
    window_start_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)  # event time
    at: Mapped[datetime] = _now()
    __table_args__ = (Index("ix_alert_transitions_alert", "alert_id", "id"),)


# -- incidents (migration 0004) ---------------------------------------------------------------
class IncidentRow(Base):
    """Alerts of one cause: one model, version (``*`` for SLOs), its most specific slice and
    overlapping windows. ``detectors``: the detectors alerting in it; ``explained``: the alerts
    it explains (``[{"alert_id", "slice", "detector", "alertname"}]``); ``notification``: what
    was last sent to Alertmanager for it (group labels, alerts, time). The On-call page reads it
    through ``ui/queries/incidents.py``."""

    __tablename__ = "incidents"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(Text, nullable=False)
    model_version: Mapped[str] = mapped_column(Text, nullable=False)
    slice: Mapped[str] = mapped_column(Text, nullable=False)  # the most specific slice
    state: Mapped[str] = mapped_column(Text, nullable=False)  # open | resolved
    severity: Mapped[str] = mapped_column(Text, nullable=False)  # page | ticket (the worst)
    first_window_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)  # event time
    last_window_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    resolved_window_ms: Mapped[int | None] = mapped_column(BigInteger)
    detectors: Mapped[list] = mapped_column(JSONB, nullable=False)
    explained: Mapped[list] = mapped_column(JSONB, nullable=False)
    notification: Mapped[dict] = mapped_column(JSONB, nullable=False)
    started_at: Mapped[datetime] = _now()
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = _now()
    __table_args__ = (Index("ix_incidents_state", "state", "updated_at"),
                      Index("ix_incidents_window", "first_window_ms"))


# -- intake and slice admission (migration 0005, issue 13) ------------------------------------
class EmbeddingDim(Base):
    """The embedding dimension of a (model, version): NULL while undecided (its events are
    parked), then decided from configuration, the reference profile or a consensus."""

    __tablename__ = "embedding_dims"
    model: Mapped[str] = mapped_column(Text, primary_key=True)
    model_version: Mapped[str] = mapped_column(Text, primary_key=True)
    dim: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str | None] = mapped_column(Text)  # "consensus" | "previous_version" | "reference"
    created_at: Mapped[datetime] = _now()
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ParkedEvent(Base):
    """A valid event waiting for its version's embedding dimension to be decided (original
    bytes; stored with the offsets that passed it, so exactly-once holds)."""

    __tablename__ = "parked_events"
    topic: Mapped[str] = mapped_column(Text, primary_key=True)
    kafka_partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    kafka_offset: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    model: Mapped[str] = mapped_column(Text, nullable=False)
    model_version: Mapped[str] = mapped_column(Text, nullable=False)
    dim: Mapped[int] = mapped_column(Integer, nullable=False)
    event_id: Mapped[str] = mapped_column(Text, nullable=False)
    message_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    raw: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    parked_at: Mapped[datetime] = _now()
    __table_args__ = (Index("ix_parked_model", "model", "model_version"),)


class ModelVersion(Base):
    """The admitted (model, version) pairs, bounded by ``limits.max_models`` and
    ``limits.max_versions_per_model``."""

    __tablename__ = "model_versions"
    model: Mapped[str] = mapped_column(Text, primary_key=True)
    model_version: Mapped[str] = mapped_column(Text, primary_key=True)
    admitted_at: Mapped[datetime] = _now()


class SliceSketch(Base):
    """A Misra-Gries heavy-hitters sketch of one slice attribute's values in one window."""

    __tablename__ = "slice_sketches"
    attribute: Mapped[str] = mapped_column(Text, primary_key=True)
    window_start_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    counts: Mapped[dict] = mapped_column(JSONB, nullable=False)  # value -> estimated count
    updated_at: Mapped[datetime] = _now()


class SliceAdmission(Base):
    """The values of one attribute that keep their own slice in one window (decided once, at
    the window's first checkpoint, from the previous window's sketch; the rest is ``other``)."""

    __tablename__ = "slice_admissions"
    attribute: Mapped[str] = mapped_column(Text, primary_key=True)
    window_start_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    admitted: Mapped[list] = mapped_column(JSONB, nullable=False)
    source_window_ms: Mapped[int | None] = mapped_column(BigInteger)
    decided_at: Mapped[datetime] = _now()


class DlqReplay(Base):
    """Event ids ``vitmon dlq replay`` re-published (a second replay skips them)."""

    __tablename__ = "dlq_replays"
    event_id: Mapped[str] = mapped_column(Text, primary_key=True)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    replayed_at: Mapped[datetime] = _now()
