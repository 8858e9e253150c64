"""users: session_version (logout and password changes end every session and token), and the
time someone last tried to sign up with an existing account's address (shown to its owner)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 03:15:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("session_version", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("signup_attempted_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("signup_attempted_at")
        batch_op.drop_column("session_version")
