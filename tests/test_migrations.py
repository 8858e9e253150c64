"""Alembic migrations and the models must describe the same schema."""

import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import make_url, text

from tests.conftest import _run_on_server, make_app
from webapp.extensions import db
from webapp.member_cache import WATCHED_TABLES


def test_migrations_match_models(tmp_path):
    app = make_app(f"sqlite:///{tmp_path / 'migrated.db'}")
    with app.app_context():
        upgrade()
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, db.metadata)
        db.engine.dispose()
    assert differences == [], f"models and migrations disagree: {differences}"


def test_migrations_downgrade_to_nothing_and_up_again(tmp_path):
    app = make_app(f"sqlite:///{tmp_path / 'roundtrip.db'}")
    with app.app_context():
        upgrade()
        downgrade(revision="base")
        upgrade()
        db.engine.dispose()


def test_upgrade_gives_postgresql_the_member_change_feed(database_url):
    """Deployed databases get their schema from migrations, not create_all: the cache's
    triggers must come from migration 0002 too, and downgrade must take them away."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the change feed's triggers exist on PostgreSQL only")
    base = make_url(database_url)
    name = f"{base.database}_migrations"
    _run_on_server(base, f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')
    try:
        app = make_app(base.set(database=name).render_as_string(hide_password=False))
        with app.app_context():
            upgrade()
            assert _member_notifications_when_a_user_is_added() == ["1"]
            assert _watched_tables() == set(WATCHED_TABLES)  # invoices since 0009
            downgrade(revision="0001")
            assert _member_notifications_when_a_user_is_added() == []
            db.engine.dispose()
    finally:
        _run_on_server(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _member_notifications_when_a_user_is_added() -> list[str]:
    with db.engine.connect() as listener, db.engine.connect() as writer:
        listener.exec_driver_sql("LISTEN member_changed")
        listener.commit()
        writer.execute(text("DELETE FROM users"))
        writer.execute(
            text(
                "INSERT INTO users (id, email, password_hash, role, created_at, "
                "stripe_customer_generation) VALUES (1, 'a@example.com', 'x', 'user', "
                "CURRENT_TIMESTAMP, 0)"
            )
        )
        writer.commit()
        pgconn = listener.connection.dbapi_connection.pgconn
        time.sleep(0.2)
        pgconn.consume_input()
        payloads = []
        while (notification := pgconn.notifies()) is not None:
            payloads.append(notification.extra.decode())
        return [payload for payload in payloads if payload]


def _watched_tables() -> set[str]:
    with db.engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE t.tgname LIKE '%%_notify_member_changed'"
        )
        return {name for (name,) in rows}
