"""Binding the database to the app, with per-dialect settings."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from webapp.extensions import db

__all__ = ["db", "init_app", "insert_or_ignore"]


def _configure_sqlite(dbapi_connection, _record) -> None:
    # WAL lets readers and one writer work at once; the busy timeout makes a second writer wait
    # instead of failing; SQLite ignores foreign keys unless asked.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL never corrupts the database; it only syncs at checkpoints, not at
    # every commit (SQLite is for development; production runs PostgreSQL).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def init_app(app: Flask) -> None:
    db.init_app(app)
    with app.app_context():
        engine: Engine = db.engine
        if engine.dialect.name == "sqlite" and not getattr(engine, "_webapp_configured", False):
            event.listen(engine, "connect", _configure_sqlite)
            engine._webapp_configured = True  # type: ignore[attr-defined]


def insert_or_ignore(model: type, values: dict[str, Any], conflict_columns: list[str]) -> bool:
    """INSERT a row unless one with the same `conflict_columns` exists; True if inserted.

    The database settles races (ON CONFLICT DO NOTHING), so there is no savepoint to manage:
    pysqlite's savepoints do not nest inside its implicit transactions.
    """
    dialect = db.session.get_bind().dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[dialect]
    statement = (
        insert(model)
        .values(**values)
        .on_conflict_do_nothing(index_elements=conflict_columns)
        .returning(*model.__table__.primary_key.columns)
    )
    # RETURNING says reliably whether a row went in (psycopg reports no rowcount here).
    return db.session.execute(statement).first() is not None
