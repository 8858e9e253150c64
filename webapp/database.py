"""Binding the database to the app, with per-dialect settings."""

from __future__ import annotations

import functools
import time
from typing import Any

from flask import Flask
from sqlalchemy import Table, TextClause, bindparam, event, text
from sqlalchemy.engine import Connection, Dialect, Engine, make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.sql.schema import CallableColumnDefault, ScalarElementColumnDefault

from webapp.extensions import Base, db

__all__ = ["db", "init_app", "insert_or_ignore", "lock_row"]


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
    options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})  # the app's own copy
    if not _single_connection_sqlite(app.config["SQLALCHEMY_DATABASE_URI"]):
        # Last in, first out: the connection just returned goes out next, so under load the same
        # few stay warm (and inside ping_after_idle's no-test window) while the rest age out.
        options.setdefault("pool_use_lifo", True)
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    db.init_app(app)
    with app.app_context():
        engine: Engine = db.engine
        if getattr(engine, "_webapp_configured", False):
            return
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _configure_sqlite)
        idle = app.config.get("DATABASE_PING_AFTER_IDLE_SECONDS")
        if idle is not None:
            ping_after_idle(engine, idle)
        engine._webapp_configured = True  # type: ignore[attr-defined]


def _single_connection_sqlite(uri: str) -> bool:
    """An in-memory SQLite database: Flask-SQLAlchemy gives it one connection (StaticPool),
    which takes no queue options."""
    url = make_url(uri)
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def ping_after_idle(engine: Engine, idle_seconds: float) -> None:
    """Test a pooled connection (a SELECT 1 round trip) before use only if it sat idle in the
    pool longer than `idle_seconds`; a dead one is replaced before the request sees it, and
    every connection older than it too (a restart ended them all), as pool_pre_ping does.

    SQLAlchemy's `pool_pre_ping` tests every checkout: one more round trip for each request
    that touches the database, a tenth of a webhook delivery's CPU. A connection used within
    the last moment is as alive as a ping would find it (a ping never covers the gap between
    itself and the query anyway); HikariCP skips its test the same way for connections used in
    the last 500 ms (`aliveBypassWindowMs`). The cost: after a database restart, a request
    that reuses a connection returned within the window fails once. The test is the pool's
    own: a listener on "checkout" that raises InvalidatePoolError (a DisconnectionError) makes
    the pool discard the connection, invalidate the older ones and check out another, up to
    three times (SQLAlchemy, "Disconnect Handling - Pessimistic").
    """

    def fresh(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = None  # just connected: nothing to test

    def stamp(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def test_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since <= idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise InvalidatePoolError(f"pooled connection found dead: {exc}") from exc

    event.listen(engine, "connect", fresh)
    event.listen(engine, "checkin", stamp)
    event.listen(engine, "checkout", test_if_idle)


def lock_row(model: type[Base], primary_key: Any) -> None:
    """Hold `model`'s row until this transaction ends, so writers that lock it take turns.

    PostgreSQL locks the row (SELECT … FOR UPDATE). SQLite has no row locks: a no-op UPDATE takes
    the database's write lock now, before this transaction reads what it is about to change,
    so no other writer can commit in between (a deferred transaction would read first and then
    fail to upgrade its snapshot).
    """
    table = _table(model)
    [key] = table.primary_key.columns
    session = db.session
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            table.select().with_only_columns(key).where(key == primary_key).with_for_update()
        )
    else:
        session.execute(table.update().where(key == primary_key).values({key.name: key}))


def insert_or_ignore(
    model: type[Base],
    values: dict[str, Any],
    conflict_columns: list[str],
    connection: Connection | None = None,
) -> bool:
    """INSERT a row unless one with the same `conflict_columns` exists; True if inserted.

    In the request's session, or on `connection` (a Core transaction of the caller's own, for a
    hot path that needs no ORM). The database settles races (ON CONFLICT DO NOTHING), so there
    is no savepoint to manage: pysqlite's savepoints do not nest inside its implicit
    transactions.
    """
    table = _table(model)
    row = {**_python_defaults(table, values), **values}
    dialect = connection.dialect if connection is not None else db.session.get_bind().dialect
    statement = _insert_or_ignore_statement(
        dialect, table, tuple(sorted(row)), tuple(conflict_columns)
    )
    # RETURNING says reliably whether a row went in (psycopg reports no rowcount here).
    executor = connection if connection is not None else db.session
    return executor.execute(statement, row).first() is not None


@functools.lru_cache(maxsize=256)
def _insert_or_ignore_statement(
    dialect: Dialect, table: Table, columns: tuple[str, ...], conflict_columns: tuple[str, ...]
) -> TextClause:
    # SQLAlchemy compiles its dialect-specific `insert().on_conflict_do_nothing()` anew on every
    # execution (it has no cache key: sqlalchemy#10445), which cost a webhook delivery more than
    # its round trips. This statement is the same SQL, in syntax both SQLite (3.35+) and
    # PostgreSQL accept, built once; typed bind parameters keep the columns' conversions.
    quote = dialect.identifier_preparer.quote  # quotes only names that need it, like insert()

    def names(keys: tuple[str, ...]) -> str:
        return ", ".join(quote(table.c[key].name) for key in keys)

    primary_key = tuple(column.key for column in table.primary_key.columns)
    sql = (
        f"INSERT INTO {quote(table.name)} ({names(columns)}) "  # noqa: S608 (names from the model)
        f"VALUES ({', '.join(f':{key}' for key in columns)}) "
        f"ON CONFLICT ({names(conflict_columns)}) DO NOTHING "
        f"RETURNING {names(primary_key)}"
    )
    parameters = [bindparam(key, type_=table.c[key].type) for key in columns]
    return text(sql).bindparams(*parameters)


def _table(model: type[Base]) -> Table:
    """A model's table (declarative models map one Table; the type says only FromClause)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _python_defaults(table: Table, values: dict[str, Any]) -> dict[str, Any]:
    """What `insert()` would fill in for the columns `values` leaves out: their Python defaults."""
    defaults = {}
    for column in table.columns:
        default = column.default
        if column.key in values or default is None:
            continue
        if isinstance(default, ScalarElementColumnDefault):
            defaults[column.key] = default.arg
        elif isinstance(default, CallableColumnDefault):
            # SQLAlchemy passes an execution context; our Python defaults take none.
            defaults[column.key] = default.arg(None)  # type: ignore[arg-type]
        else:
            raise ValueError(f"{table.name}.{column.key}: a SQL default needs insert()")
    return defaults
