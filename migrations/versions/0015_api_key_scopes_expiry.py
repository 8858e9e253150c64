"""API keys over the API: an opaque public id, a description, a scope and an optional expiry;
keys made before keep working with the `full` scope

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29 09:50:00

"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def _public_id() -> str:
    # The same form as webapp.api.keys.new_public_id (copied: a migration must not change
    # when the app's code does).
    return "key_" + secrets.token_urlsafe(12)


def upgrade():
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("public_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("description", sa.String(length=500), nullable=True))
        # Existing keys could do everything, so they keep the `full` scope.
        batch_op.add_column(
            sa.Column(
                "scope", sa.String(length=8), server_default=sa.text("'full'"), nullable=False
            )
        )
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))

    keys = sa.table("api_keys", sa.column("id", sa.Integer), sa.column("public_id", sa.String))
    connection = op.get_bind()
    for (key_id,) in connection.execute(sa.select(keys.c.id)).all():
        connection.execute(keys.update().where(keys.c.id == key_id).values(public_id=_public_id()))

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.alter_column("public_id", existing_type=sa.String(length=32), nullable=False)
        batch_op.create_index(batch_op.f("ix_api_keys_public_id"), ["public_id"], unique=True)


def downgrade():
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_public_id"))
        batch_op.drop_column("expires_at")
        batch_op.drop_column("scope")
        batch_op.drop_column("description")
        batch_op.drop_column("public_id")
