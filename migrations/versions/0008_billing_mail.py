"""billing mail: members' mail preferences and credits-low state; outbox kind, member, headers

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 07:30:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("credits_low_threshold", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "credits_low_notified", sa.Boolean(), server_default=sa.false(), nullable=False
            )
        )
        batch_op.add_column(
            sa.Column("wants_receipt_mail", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "wants_credits_low_mail", sa.Boolean(), server_default=sa.true(), nullable=False
            )
        )
    with op.batch_alter_table("outgoing_mail", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("user_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("headers", sa.JSON(), nullable=True))
        batch_op.create_index("ix_outgoing_mail_user_kind", ["user_id", "kind"], unique=False)


def downgrade():
    with op.batch_alter_table("outgoing_mail", schema=None) as batch_op:
        batch_op.drop_index("ix_outgoing_mail_user_kind")
        batch_op.drop_column("headers")
        batch_op.drop_column("user_id")
        batch_op.drop_column("kind")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("wants_credits_low_mail")
        batch_op.drop_column("wants_receipt_mail")
        batch_op.drop_column("credits_low_notified")
        batch_op.drop_column("credits_low_threshold")
