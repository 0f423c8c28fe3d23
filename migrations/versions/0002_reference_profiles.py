"""reference profiles

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

from migrations.columns import create

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create("reference_profiles", "id serial, model text, model_version text, source text, "
           "n_events bigint, profile bytes, summary jsonb, active bool, created_at now", pk=("id",),
           indexes={"ix_reference_model": ["model", "model_version"]})
    op.create_index("uq_reference_active", "reference_profiles", ["model", "model_version"],
                    unique=True, postgresql_where=sa.text("active"))


def downgrade() -> None:
    op.drop_table("reference_profiles")
