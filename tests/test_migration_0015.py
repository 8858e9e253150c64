"""Migration 0015: keys made before it keep working, with the `full` scope and an opaque id
(on SQLite and, when the suite runs there, on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask_migrate import downgrade, upgrade
from sqlalchemy import make_url, text

from tests.conftest import _run_on_server, make_app
from webapp.api import keys
from webapp.extensions import db

SECRET = "llmgen_" + "a" * 43


@pytest.fixture
def empty_database(database_url: str, tmp_path) -> Iterator[str]:
    """A database of its own, empty, on the suite's kind of server."""
    if not database_url.startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'migrated.db'}"
        return
    base = make_url(database_url)
    name = f"{base.database}_m0015"
    _run_on_server(base, f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')
    yield base.set(database=name).render_as_string(hide_password=False)
    _run_on_server(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _insert_old_keys(app: Flask) -> None:
    with app.app_context():
        db.session.execute(
            text(
                "INSERT INTO users (id, email, password_hash, role, created_at, "
                "stripe_customer_generation, session_version, email_verified_at) VALUES "
                "(1, 'old@example.com', 'x', 'user', CURRENT_TIMESTAMP, 0, 0, CURRENT_TIMESTAMP)"
            )
        )
        for number, digest in ((1, keys.hash_key(SECRET)), (2, "b" * 64)):
            db.session.execute(
                text(
                    "INSERT INTO api_keys (id, user_id, name, prefix, key_hash, created_at) "
                    "VALUES (:id, 1, :name, 'llmgen_aaaaaa', :digest, CURRENT_TIMESTAMP)"
                ),
                {"id": number, "name": f"old {number}", "digest": digest},
            )
        db.session.commit()


def test_old_keys_get_full_scope_and_distinct_opaque_ids(empty_database):
    app = make_app(empty_database)
    try:
        with app.app_context():
            upgrade(revision="0009")
        _insert_old_keys(app)
        with app.app_context():
            upgrade()  # to the head, so the models match the schema
            rows = db.session.execute(
                text("SELECT public_id, scope, description, expires_at FROM api_keys ORDER BY id")
            ).all()
            assert [row[1:] for row in rows] == [("full", None, None), ("full", None, None)]
            ids = [row[0] for row in rows]
            assert all(public_id.startswith("key_") for public_id in ids)
            assert len(set(ids)) == 2
            # The old key still opens the API, now with the `full` scope.
            holder = keys.holder_of_key(SECRET)
            assert holder is not None and holder.key.scope == "full"
            # End the session's transaction: on PostgreSQL its read lock on api_keys would
            # block the downgrade's ALTER TABLE for ever.
            db.session.remove()
            downgrade(revision="0009")
            columns = db.session.execute(text("SELECT * FROM api_keys")).keys()
            assert "public_id" not in columns and "scope" not in columns
            db.session.remove()
            db.engine.dispose()
    finally:
        with app.app_context():
            db.engine.dispose()
