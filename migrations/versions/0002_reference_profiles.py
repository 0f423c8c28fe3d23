"""reference profiles

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reference_profiles",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("model_version", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("n_events", sa.BigInteger(), nullable=False),
        sa.Column("profile", sa.LargeBinary(), nullable=False),
        sa.Column("summary", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_reference_model", "reference_profiles", ["model", "model_version"])
    op.create_index("uq_reference_active", "reference_profiles", ["model", "model_version"],
                    unique=True, postgresql_where=sa.text("active"))


def downgrade() -> None:
    op.drop_index("uq_reference_active", table_name="reference_profiles")
    op.drop_index("ix_reference_model", table_name="reference_profiles")
    op.drop_table("reference_profiles")
