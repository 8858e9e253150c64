"""billing history: invoices' subtotal, discount and tax; an index by member and date; the
member change feed watches invoices (the account page shows them)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 07:55:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("subtotal", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("total_discount", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("total_tax", sa.Integer(), nullable=True))
        batch_op.create_index("ix_invoices_user_created", ["user_id", "created"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        # notify_member_changed() comes from migration 0002.
        op.execute(
            "CREATE TRIGGER invoices_notify_member_changed "
            "AFTER INSERT OR UPDATE OR DELETE ON invoices "
            "FOR EACH ROW EXECUTE FUNCTION notify_member_changed('user_id')"
        )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS invoices_notify_member_changed ON invoices")
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_index("ix_invoices_user_created")
        batch_op.drop_column("total_tax")
        batch_op.drop_column("total_discount")
        batch_op.drop_column("subtotal")
