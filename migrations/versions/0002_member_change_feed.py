"""member change feed: PostgreSQL triggers that NOTIFY member_changed

Each worker's member cache (webapp/member_cache.py) listens on `member_changed` and forgets a
member when one of their rows changes. SQLite needs nothing: the cache watches its data_version.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 01:00:00

"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# A copy, not an import, of webapp/member_cache.py's SQL: a migration must never change.
WATCHED_TABLES = {
    "users": "id",
    "subscriptions": "user_id",
    "credit_entries": "user_id",
    "api_keys": "user_id",
}

NOTIFY_FUNCTION_SQL = """
CREATE OR REPLACE FUNCTION notify_member_changed() RETURNS trigger AS $$
DECLARE
    member text;
BEGIN
    -- TG_ARGV[0] names the column holding the member's id (users.id, others' user_id).
    IF TG_OP <> 'INSERT' THEN
        member := to_jsonb(OLD) ->> TG_ARGV[0];
        IF member IS NOT NULL THEN PERFORM pg_notify('member_changed', member); END IF;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        member := to_jsonb(NEW) ->> TG_ARGV[0];
        IF member IS NOT NULL THEN PERFORM pg_notify('member_changed', member); END IF;
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql
"""


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(NOTIFY_FUNCTION_SQL)
    for table, column in WATCHED_TABLES.items():
        op.execute(
            f"CREATE TRIGGER {table}_notify_member_changed "
            f"AFTER INSERT OR UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION notify_member_changed('{column}')"
        )


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in WATCHED_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_notify_member_changed ON {table}")
    op.execute("DROP FUNCTION IF EXISTS notify_member_changed()")
