"""Migration 0013 gives existing ledger rows their API type and a random `txn_` id, on SQLite and
on PostgreSQL, and takes them away again on downgrade."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import make_url, text
from sqlalchemy.exc import IntegrityError

from tests.conftest import _run_on_server, make_app
from webapp.extensions import db

# (amount, kind, grant_key) as earlier versions wrote them, and the type each must get.
ROWS = [
    (3000, "grant", "credits:in_1:2026-01-15T09:30:00+00:00:0", "purchase"),
    (-1500, "refund", "credits:in_1:2026-01-15T09:30:00+00:00:1", "refund"),
    (1500, "grant", "credits:in_1:2026-01-15T09:30:00+00:00:2", "refund"),  # a won dispute
    (-10, "refund", "credits:in_1:2026-01-15T09:30:00+00:00:10", "refund"),
    (10, "grant", "credits:in_1:2026-01-15T09:30:00+00:00:11", "refund"),
    (1000, "grant", "credits:in_2:2026-02-15T09:30:00+00:00:0", "purchase"),
    (500, "grant", "invoice:in_0", "purchase"),  # before migration 0003's keys
    (-120, "usage", None, "usage"),
    (50, "adjustment", None, "purchase"),
    (-80, "refund", None, "refund"),
]


@pytest.fixture
def migrated_url(database_url: str, tmp_path) -> Iterator[str]:
    """An empty database of the suite's kind, for migrations to build."""
    if not database_url.startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    base = make_url(database_url)
    name = f"{base.database}_ledger"
    drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    _run_on_server(base, drop, f'CREATE DATABASE "{name}"')
    yield base.set(database=name).render_as_string(hide_password=False)
    _run_on_server(base, drop)


def test_existing_entries_get_their_type_and_an_opaque_id(migrated_url):
    app = make_app(migrated_url)
    with app.app_context():
        upgrade(revision="0009")
        db.session.execute(
            text(
                "INSERT INTO users (id, email, password_hash, role, created_at, "
                "stripe_customer_generation) VALUES (1, 'a@example.com', 'x', 'user', "
                "CURRENT_TIMESTAMP, 0)"
            )
        )
        for amount, kind, key, _type in ROWS:
            db.session.execute(
                text(
                    "INSERT INTO credit_entries (user_id, amount, kind, description, grant_key, "
                    "created_at) VALUES (1, :amount, :kind, 'old', :key, CURRENT_TIMESTAMP)"
                ),
                {"amount": amount, "kind": kind, "key": key},
            )
        db.session.commit()

        upgrade(revision="0013")
        rows = db.session.execute(
            text("SELECT id, amount, type, txn_id FROM credit_entries ORDER BY id")
        ).all()
        assert [(amount, entry_type) for _id, amount, entry_type, _txn in rows] == [
            (amount, entry_type) for amount, _kind, _key, entry_type in ROWS
        ]
        txn_ids = [txn for *_rest, txn in rows]
        assert all(re.fullmatch(r"txn_[0-9a-f]{24}", txn) for txn in txn_ids)
        assert len(set(txn_ids)) == len(rows)
        # Unique, as new entries need it to be.
        with pytest.raises(IntegrityError):
            db.session.execute(text("UPDATE credit_entries SET txn_id = :txn"), {"txn": txn_ids[0]})
        db.session.rollback()

        downgrade(revision="0009")
        columns = db.session.execute(text("SELECT * FROM credit_entries")).keys()
        assert not {"txn_id", "type", "site_id", "balance_after"} & set(columns)
        db.session.commit()
        db.engine.dispose()
