"""company details: a member's company name, billing address and VAT number (our copy of
Stripe's customer); the member change feed watches them (the account page shows them)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 10:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "company_details",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("line1", sa.String(length=200), nullable=True),
        sa.Column("line2", sa.String(length=200), nullable=True),
        sa.Column("city", sa.String(length=100), nullable=True),
        sa.Column("postal_code", sa.String(length=20), nullable=True),
        sa.Column("state", sa.String(length=100), nullable=True),
        sa.Column("tax_id_type", sa.String(length=20), nullable=True),
        sa.Column("tax_id_value", sa.String(length=40), nullable=True),
        sa.Column("stripe_tax_id", sa.String(length=255), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("user_id"),
    )
    if op.get_bind().dialect.name == "postgresql":
        # notify_member_changed() comes from migration 0002.
        op.execute(
            "CREATE TRIGGER company_details_notify_member_changed "
            "AFTER INSERT OR UPDATE OR DELETE ON company_details "
            "FOR EACH ROW EXECUTE FUNCTION notify_member_changed('user_id')"
        )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS company_details_notify_member_changed ON company_details")
    op.drop_table("company_details")
