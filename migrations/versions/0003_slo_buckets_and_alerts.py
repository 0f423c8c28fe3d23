"""SLO buckets and progress, alerts and their transitions

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_OPEN = sa.text("state IN ('pending', 'firing', 'suppressed')")


def _now(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.text("now()"),
                     nullable=False)


def upgrade() -> None:
    op.create_table(
        "slo_buckets",
        sa.Column("slo", sa.Text(), nullable=False),
        sa.Column("bucket_start_ms", sa.BigInteger(), nullable=False),
        sa.Column("good", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("slo", "bucket_start_ms"),
    )
    op.create_table(
        "slo_progress",
        sa.Column("slo", sa.Text(), nullable=False),
        sa.Column("evaluated_to_ms", sa.BigInteger(), nullable=False),
        _now("updated_at"),
        sa.PrimaryKeyConstraint("slo"),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("severity", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("labels", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("annotations", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("consecutive", sa.Integer(), nullable=False),
        sa.Column("last_window_ms", sa.BigInteger(), nullable=False),
        sa.Column("first_window_ms", sa.BigInteger(), nullable=False),
        sa.Column("fired_window_ms", sa.BigInteger(), nullable=True),
        sa.Column("resolved_window_ms", sa.BigInteger(), nullable=True),
        _now("created_at"),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        _now("updated_at"),
        sa.Column("last_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_sent_state", sa.Text(), nullable=True),
        sa.Column("sent_count", sa.Integer(), nullable=False),
        sa.Column("send_attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("uq_alerts_open_fingerprint", "alerts", ["fingerprint"], unique=True,
                    postgresql_where=_OPEN)
    op.create_index("ix_alerts_state", "alerts", ["state", "updated_at"])
    op.create_table(
        "alert_transitions",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.BigInteger(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("from_state", sa.Text(), nullable=False),
        sa.Column("to_state", sa.Text(), nullable=False),
        sa.Column("window_start_ms", sa.BigInteger(), nullable=False),
        _now("at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alert_transitions_alert", "alert_transitions", ["alert_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_alert_transitions_alert", table_name="alert_transitions")
    op.drop_table("alert_transitions")
    op.drop_index("ix_alerts_state", table_name="alerts")
    op.drop_index("uq_alerts_open_fingerprint", table_name="alerts")
    op.drop_table("alerts")
    op.drop_table("slo_progress")
    op.drop_table("slo_buckets")
