"""SLO buckets and progress, alerts and their transitions

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

from migrations.columns import create

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_OPEN = sa.text("state IN ('pending', 'firing', 'suppressed')")


def upgrade() -> None:
    create("slo_buckets", "slo text, bucket_start_ms bigint, good bigint, total bigint",
           pk=("slo", "bucket_start_ms"))
    create("slo_progress", "slo text, evaluated_to_ms bigint, updated_at now", pk=("slo",))
    create("alerts", "id serial, fingerprint text, rule text, severity text, state text, "
           "labels jsonb, annotations jsonb, consecutive int, last_window_ms bigint, "
           "first_window_ms bigint, fired_window_ms bigint?, resolved_window_ms bigint?, "
           "created_at now, fired_at tstz?, resolved_at tstz?, updated_at now, "
           "last_sent_at tstz?, last_sent_state text?, sent_count int, send_attempts int, "
           "next_attempt_at tstz?, last_error text?", pk=("id",),
           indexes={"ix_alerts_state": ["state", "updated_at"]})
    op.create_index("uq_alerts_open_fingerprint", "alerts", ["fingerprint"], unique=True,
                    postgresql_where=_OPEN)
    create("alert_transitions", "id serial, alert_id bigint, fingerprint text, from_state text, "
           "to_state text, window_start_ms bigint, at now", pk=("id",),
           indexes={"ix_alert_transitions_alert": ["alert_id", "id"]})


def downgrade() -> None:
    op.drop_table("alert_transitions")
    op.drop_table("alerts")
    op.drop_table("slo_progress")
    op.drop_table("slo_buckets")
