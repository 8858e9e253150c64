"""checkout sessions: when the buyer agreed to the terms of service (consent_collection)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 09:40:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("checkout_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("terms_accepted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table("checkout_sessions", schema=None) as batch_op:
        batch_op.drop_column("terms_accepted_at")
