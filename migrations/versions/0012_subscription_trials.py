"""free trials: a subscription's trial start and end (the account page's "Trial ends DATE";
whoever had one is offered no second)

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 09:55:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trial_start", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("trial_end", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_column("trial_end")
        batch_op.drop_column("trial_start")
