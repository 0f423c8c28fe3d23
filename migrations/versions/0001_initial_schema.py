"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 20:42:17.790211
"""
from alembic import op

from migrations.columns import create

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None

TABLES = ("catalog", "consumer_offsets", "findings", "ingest_counts", "labels", "predictions",
          "rejected_events", "window_states")


def upgrade() -> None:
    create("catalog", "kind text, name text, value text, seq identity", pk=("kind", "name", "value"))
    create("consumer_offsets", "consumer_group text, topic text, kafka_partition int, "
           "next_offset bigint, watermark_ms bigint, high_watermark bigint?, updated_at now",
           pk=("consumer_group", "topic", "kafka_partition"))
    create("findings", "id serial, detector text, detector_version int, model text, "
           "model_version text, slice text, window_start_ms bigint, window_end_ms bigint, "
           "subject text, status text, severity text, test text, score float?, threshold float?, "
           "p_value float?, n bigint, details jsonb, revision int, evaluated_at now", pk=("id",),
           indexes={"ix_findings_evaluated_at": ["evaluated_at"],
                    "ix_findings_status": ["status", "window_start_ms"],
                    "ix_findings_window": ["window_start_ms"]})
    op.create_index('uq_findings_key', 'findings', ['detector', 'model', 'model_version', 'slice', 'window_start_ms', 'subject'], unique=True)
    create("ingest_counts", "model text, model_version text, accepted bigint, updated_at now",
           pk=("model", "model_version"))
    create("labels", "event_id str128, label int, ts_ms bigint, source text?, "
           "kafka_partition int, kafka_offset bigint, received_at now", pk=("event_id",))
    create("predictions", "event_id str128, ts_ms bigint, model text, model_version text, "
           "window_start_ms bigint, pred int, confidence float?, is_error bool, latency_ms float, "
           "slices text, attrs jsonb?, input_sha256 text?, sample_uri text?, kafka_partition int, "
           "kafka_offset bigint, ingested_at now", pk=("event_id",),
           indexes={"ix_predictions_model_ts": ["model", "model_version", "ts_ms"],
                    "ix_predictions_ts": ["ts_ms"]})
    create("rejected_events", "topic text, kafka_partition int, kafka_offset bigint, reason text, "
           "detail text, event_id text?, model text?, model_version text?, message_key bytes?, "
           "raw bytes?, received_at now", pk=("topic", "kafka_partition", "kafka_offset"),
           indexes={"ix_rejected_reason": ["reason"], "ix_rejected_received_at": ["received_at"]})
    create("window_states", "detector text, model text, model_version text, slice text, "
           "window_start_ms bigint, window_end_ms bigint, detector_version int, n_events bigint, "
           "state bytes, dirty bool, updated_at now",
           pk=("detector", "model", "model_version", "slice", "window_start_ms"),
           indexes={"ix_window_states_dirty": ["dirty", "window_end_ms"],
                    "ix_window_states_window": ["window_start_ms"]})


def downgrade() -> None:
    for table in reversed(TABLES):  # a table's indexes go with it
        op.drop_table(table)

