"""Intake (issue 13): embedding dimension by consensus with parked events, admitted model
versions (caps), top-K slice admission per window, DLQ replays

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

from migrations.columns import create

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create("embedding_dims", "model text, model_version text, dim int?, source text?, "
           "created_at now, decided_at tstz?", pk=("model", "model_version"))
    create("parked_events", "topic text, kafka_partition int, kafka_offset bigint, model text, "
           "model_version text, dim int, event_id text, message_key bytes?, raw bytes, "
           "parked_at now", pk=("topic", "kafka_partition", "kafka_offset"),
           indexes={"ix_parked_model": ["model", "model_version"]})
    create("model_versions", "model text, model_version text, admitted_at now",
           pk=("model", "model_version"))
    create("slice_sketches", "attribute text, window_start_ms bigint, counts jsonb, "
           "updated_at now", pk=("attribute", "window_start_ms"))
    create("slice_admissions", "attribute text, window_start_ms bigint, admitted jsonb, "
           "source_window_ms bigint?, decided_at now", pk=("attribute", "window_start_ms"))
    create("dlq_replays", "event_id text, reason text, replayed_at now", pk=("event_id",))
    # A dimension learnt from one event (before this revision) is not evidence: forget it.
    op.execute(sa.text("DELETE FROM catalog WHERE kind = 'embedding_dim'"))
    # Admitted versions so far: every (model, version) that has accepted events.
    op.execute(sa.text("INSERT INTO model_versions (model, model_version) "
                       "SELECT model, model_version FROM ingest_counts ON CONFLICT DO NOTHING"))


def downgrade() -> None:
    for table in ("dlq_replays", "slice_admissions", "slice_sketches", "model_versions",
                  "parked_events", "embedding_dims"):
        op.drop_table(table)
