"""webhook queue: when the sweeper last re-queued a waiting event; a failed one's next retry

Revision ID: 0018
Revises: 0016
Create Date: 2026-11-29 13:20:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        # NULL: never re-queued; the sweeper then measures the wait from received_at.
        batch_op.add_column(sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True))
        # A failed event's next retry by a worker; NULL once its retries are spent.
        batch_op.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.drop_column("next_attempt_at")
        batch_op.drop_column("queued_at")
