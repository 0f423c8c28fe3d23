"""incidents; alerts explained by a more specific slice, and their incident

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

from migrations.columns import columns, create

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_OPEN_BEFORE = sa.text("state IN ('pending', 'firing', 'suppressed')")
_OPEN = sa.text("state IN ('pending', 'firing', 'suppressed', 'explained')")


def upgrade() -> None:
    create("incidents", "id serial, model text, model_version text, slice text, state text, "
           "severity text, first_window_ms bigint, last_window_ms bigint, "
           "resolved_window_ms bigint?, detectors jsonb, explained jsonb, notification jsonb, "
           "started_at now, resolved_at tstz?, updated_at now", pk=("id",),
           indexes={"ix_incidents_state": ["state", "updated_at"],
                    "ix_incidents_window": ["first_window_ms"]})
    for col in columns("incident_id bigint?, explained_by_alert_id bigint?, explained_by text?"):
        op.add_column("alerts", col)
    op.create_index("ix_alerts_incident", "alerts", ["incident_id"], unique=False)
    op.drop_index("uq_alerts_open_fingerprint", table_name="alerts")
    op.create_index("uq_alerts_open_fingerprint", "alerts", ["fingerprint"], unique=True,
                    postgresql_where=_OPEN)


def downgrade() -> None:
    op.drop_index("uq_alerts_open_fingerprint", table_name="alerts")
    op.execute("UPDATE alerts SET state = 'suppressed' WHERE state = 'explained'")
    op.create_index("uq_alerts_open_fingerprint", "alerts", ["fingerprint"], unique=True,
                    postgresql_where=_OPEN_BEFORE)
    op.drop_index("ix_alerts_incident", table_name="alerts")
    for col in ("explained_by", "explained_by_alert_id", "incident_id"):
        op.drop_column("alerts", col)
    op.drop_table("incidents")
