"""credit ledger vocabulary: each entry's API type (purchase, usage, refund), an opaque `txn_`
id, the site a usage was for and the balance after it; indexes for the paged credit history

Existing rows are backfilled: usage stays usage; the first grant of an invoice month (a
`credits:…:0` key, an old-scheme `invoice:…` key, or a grant with no key) is a purchase; every
other entry an invoice caused (credits taken back after money went back, or given back when it
returned) is a refund.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29 09:55:00

"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

BACKFILL_TYPES = """
UPDATE credit_entries SET type = CASE
    WHEN kind IN ('usage', 'reversal') THEN 'usage'
    WHEN amount > 0 AND (grant_key IS NULL OR grant_key NOT LIKE :month_key
                         OR grant_key LIKE :first_of_month) THEN 'purchase'
    ELSE 'refund'
END
"""


def upgrade():
    with op.batch_alter_table("credit_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("txn_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("type", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("site_id", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("balance_after", sa.Integer(), nullable=True))
    connection = op.get_bind()
    # A month's entries are `credits:<invoice>:<month>:<n>`; n = 0 is its first (the grant).
    connection.execute(
        sa.text(BACKFILL_TYPES), {"month_key": "credits:%", "first_of_month": "%:0"}
    )
    ids = [row[0] for row in connection.execute(sa.text("SELECT id FROM credit_entries"))]
    if ids:
        # Random like new entries' (webapp.models.billing.new_transaction_id): nothing in the id
        # may hint at the row's place in the table.
        connection.execute(
            sa.text("UPDATE credit_entries SET txn_id = :txn WHERE id = :id"),
            [{"id": row_id, "txn": "txn_" + secrets.token_hex(12)} for row_id in ids],
        )
    with op.batch_alter_table("credit_entries", schema=None) as batch_op:
        batch_op.alter_column("txn_id", existing_type=sa.String(length=40), nullable=False)
        batch_op.alter_column("type", existing_type=sa.String(length=10), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_credit_entries_txn_id"), ["txn_id"])
        batch_op.create_index(
            "ix_credit_entries_user_created", ["user_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_credit_entries_user_type_created", ["user_id", "type", "created_at"], unique=False
        )


def downgrade():
    with op.batch_alter_table("credit_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_credit_entries_user_type_created")
        batch_op.drop_index("ix_credit_entries_user_created")
        batch_op.drop_constraint(batch_op.f("uq_credit_entries_txn_id"), type_="unique")
        batch_op.drop_column("balance_after")
        batch_op.drop_column("site_id")
        batch_op.drop_column("type")
        batch_op.drop_column("txn_id")
