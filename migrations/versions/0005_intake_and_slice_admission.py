"""Intake (issue 13): embedding dimension by consensus with parked events, admitted model
versions (caps), top-K slice admission per window, DLQ replays

Revision ID: 0005
Revises: 0004
"""
from alembic import op

from migrations.columns import create

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None
TABLES = ("embedding_dims", "parked_events", "model_versions", "slice_sketches",
          "slice_admissions", "dlq_replays")


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
    op.execute("DELETE FROM catalog WHERE kind = 'embedding_dim'")
    # Admitted versions so far: every (model, version) that has accepted events.
    op.execute("INSERT INTO model_versions (model, model_version) "
               "SELECT model, model_version FROM ingest_counts ON CONFLICT DO NOTHING")


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
