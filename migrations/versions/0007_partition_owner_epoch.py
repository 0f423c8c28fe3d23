"""consumer_offsets: owner epoch and owner, for fencing under a consumer group

Every process that is assigned a partition claims it: the epoch goes up by one and the process
remembers it; its checkpoint commits only while the stored epoch is still its own. A process
paused past its session timeout ("zombie") therefore cannot commit once another has claimed.

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("consumer_offsets", sa.Column("owner_epoch", sa.BigInteger(), nullable=False,
                                                server_default=sa.text("0")))
    op.add_column("consumer_offsets", sa.Column("owner", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("consumer_offsets", "owner")
    op.drop_column("consumer_offsets", "owner_epoch")
