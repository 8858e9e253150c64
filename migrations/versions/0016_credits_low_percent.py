"""low balance: a member's credits-low threshold may be a share of their plan's monthly credits

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29 10:55:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        # Set: the threshold is this percentage of the live plan's monthly credits, and
        # credits_low_threshold is not read; NULL: credits_low_threshold (credits) as before.
        batch_op.add_column(sa.Column("credits_low_percent", sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("credits_low_percent")
