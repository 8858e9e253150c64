"""What logged-in pages read about a member, kept per worker and dropped when the database changes.

A logged-in page view used to cost several queries (the user, their plan, their credits) for data
that changes a few times a month. Each worker now keeps those answers per user, and forgets a
user's as soon as the database says one of their rows changed:

- PostgreSQL: triggers on `users`, `subscriptions`, `credit_entries` and `api_keys` send
  `NOTIFY member_changed, '<user id>'` when the writing transaction commits (see
  `NOTIFY_FUNCTION_SQL`). Each worker LISTENs on a connection of its own and, before answering
  from the cache, reads what has arrived: a non-blocking read of a socket, no round trip.
- SQLite (development): `PRAGMA data_version` on a connection of its own changes whenever another
  connection commits; any change drops the whole cache.

A worker also forgets everything when it commits itself, so its own writes never race their
notification. Entries expire after MEMBER_CACHE_SECONDS whatever happens (a bound on anything
that changes with time alone); 0 turns the cache off. When the feed cannot be opened or breaks,
the cache is bypassed until it works again: a correct, slower page, never a stale one.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import psycopg
from flask import Flask, current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.engine import Engine

from webapp.extensions import db

log = logging.getLogger(__name__)
T = TypeVar("T")

CHANNEL = "member_changed"
# Tables whose rows a logged-in page shows, with the column naming the member a row belongs to.
WATCHED_TABLES = {
    "users": "id",
    "subscriptions": "user_id",
    "credit_entries": "user_id",
    "api_keys": "user_id",
    "invoices": "user_id",  # the account page's billing history (trigger: migration 0009)
    "company_details": "user_id",  # the account page's company details (trigger: 0011)
}

# The PostgreSQL side of the feed, shared with migration 0002 (which keeps its own copy, as
# migrations must not change when this module does).
NOTIFY_FUNCTION_SQL = f"""
CREATE OR REPLACE FUNCTION notify_member_changed() RETURNS trigger AS $$
DECLARE
    member text;
BEGIN
    -- TG_ARGV[0] names the column holding the member's id (users.id, others' user_id).
    IF TG_OP <> 'INSERT' THEN
        member := to_jsonb(OLD) ->> TG_ARGV[0];
        IF member IS NOT NULL THEN PERFORM pg_notify('{CHANNEL}', member); END IF;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        member := to_jsonb(NEW) ->> TG_ARGV[0];
        IF member IS NOT NULL THEN PERFORM pg_notify('{CHANNEL}', member); END IF;
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql
"""


def trigger_sql(table: str, column: str) -> str:
    return (
        f"CREATE TRIGGER {table}_notify_member_changed "
        f"AFTER INSERT OR UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION notify_member_changed('{column}')"
    )


EVERYONE = object()  # what a feed reports when it cannot say whose rows changed
_INHERITED: list[Any] = []  # feed connections a forked child must leave alone (see below)


class ChangeFeed(Protocol):
    def changes(self) -> set[int] | object:
        """Members whose rows changed since the last call, or EVERYONE."""

    def close(self) -> None: ...


class PostgresFeed:
    """LISTEN member_changed on a connection of this process's own."""

    RETRY_SECONDS = 5.0  # after a failed connect, so a database outage costs no connect per page

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Any = None
        self._pid = 0
        self._retry_at = 0.0

    def changes(self) -> set[int] | object:
        if self._connection is not None and self._pid != os.getpid():
            self._abandon_inherited()
        if self._connection is None:
            if time.monotonic() < self._retry_at:
                raise FeedUnavailable("waiting before reconnecting")
            # A new connection missed whatever was sent before it listened: start from scratch.
            self._connection = self._listen()
            self._pid = os.getpid()
            return EVERYONE
        pgconn = self._connection.pgconn
        try:
            pgconn.consume_input()
        except psycopg.Error as exc:  # the server went away
            log.warning("member cache: lost the change feed (%s); reconnecting", exc)
            self.close()
            raise FeedUnavailable from exc
        changed: set[int] = set()
        while (notification := pgconn.notifies()) is not None:
            payload = notification.extra.decode()
            if not payload.isdigit():
                return EVERYONE
            changed.add(int(payload))
        return changed

    def _listen(self) -> Any:
        cargs, cparams = self._engine.dialect.create_connect_args(self._engine.url)
        try:
            connection = psycopg.connect(*cargs, **cparams, autocommit=True)
            connection.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as exc:
            log.warning("member cache: cannot listen for changes (%s); cache bypassed", exc)
            self._retry_at = time.monotonic() + self.RETRY_SECONDS
            raise FeedUnavailable from exc
        return connection

    def _abandon_inherited(self) -> None:
        # A connection inherited over fork() is the parent's: closing it, even by garbage
        # collection, would end the parent's session. Keep it referenced and never use it.
        _INHERITED.append(self._connection)
        self._connection = None

    def close(self) -> None:
        if self._pid != os.getpid():
            return  # nothing of this process's own to close
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


class SqliteFeed:
    """`PRAGMA data_version` of a connection of its own: it moves when anyone else commits."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._connection: sqlite3.Connection | None = None
        self._version: int | None = None
        self._pid = 0

    def changes(self) -> set[int] | object:
        try:
            if self._connection is None or self._pid != os.getpid():
                # mode=rw: never create the database file; the app's own connections do that.
                uri = Path(self._path).resolve().as_uri() + "?mode=rw"
                self._connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
                self._pid, self._version = os.getpid(), None
            (version,) = self._connection.execute("PRAGMA data_version").fetchone()
        except sqlite3.Error as exc:
            self.close()
            raise FeedUnavailable from exc
        changed = version != self._version
        self._version = version
        return EVERYONE if changed else set()

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


class FeedUnavailable(Exception):
    """The feed cannot vouch for the cache right now."""


class MemberCache:
    """Per user, a few named values (`get(user_id, name, load)`), kept while the feed is quiet."""

    # A member's entries take a few KB (mostly the account page): 2,000 keep a worker's memory
    # well inside its budget while covering everyone active within MEMBER_CACHE_SECONDS.
    def __init__(self, feed: ChangeFeed | None, max_age: float, max_members: int = 2_000) -> None:
        self._feed = feed
        self._max_age = max_age
        self._max_members = max_members
        self._entries: OrderedDict[int, dict[Hashable, tuple[float, Any]]] = OrderedDict()
        self._lock = threading.RLock()
        # Bumped by every invalidation: a value loaded across one is not stored (it may be old).
        self._epoch = 0

    @property
    def enabled(self) -> bool:
        return self._feed is not None and self._max_age > 0

    def get(self, user_id: int, name: Hashable, load: Callable[[], T]) -> T:
        """The cached `name` of `user_id`, or `load()`'s answer, remembered if still current."""
        if not self.enabled:
            return load()
        with self._lock:
            if not self._sync():
                return load()
            now = time.monotonic()
            member = self._entries.get(user_id)
            if member is not None and name in member:
                stored_at, value = member[name]
                if now - stored_at < self._max_age:
                    self._entries.move_to_end(user_id)
                    return value
            epoch = self._epoch
        value = load()
        with self._lock:
            if epoch == self._epoch:
                self._store(user_id, name, now, value)
        return value

    def _store(self, user_id: int, name: Hashable, now: float, value: Any) -> None:
        member = self._entries.setdefault(user_id, {})
        # Names can go out of use (an account page of an older copy version): drop expired ones.
        for expired in [key for key, (at, _) in member.items() if now - at >= self._max_age]:
            del member[expired]
        member[name] = (now, value)
        self._entries.move_to_end(user_id)
        while len(self._entries) > self._max_members:
            self._entries.popitem(last=False)  # the least recently used member

    def forget_everyone(self) -> None:
        with self._lock:
            self._entries.clear()
            self._epoch += 1

    def close(self) -> None:
        with self._lock:
            self.forget_everyone()
            if self._feed is not None:
                self._feed.close()

    def _sync(self) -> bool:
        """Apply the feed's news; False if the feed cannot vouch for the cache now."""
        try:
            changed = self._feed.changes()  # type: ignore[union-attr]
        except FeedUnavailable:
            self.forget_everyone()
            return False
        if changed is EVERYONE:
            self.forget_everyone()
        elif changed:
            for user_id in changed:  # type: ignore[union-attr]
                self._entries.pop(user_id, None)
            self._epoch += 1
        return True


def cached(user_id: int, name: Hashable, load: Callable[[], T]) -> T:
    """`MemberCache.get` on the current app's cache."""
    return current_app.extensions["member_cache"].get(user_id, name, load)


def _feed_for(engine: Engine) -> ChangeFeed | None:
    url = engine.url
    if engine.dialect.name == "postgresql":
        return PostgresFeed(engine)
    if engine.dialect.name == "sqlite" and url.database and url.database != ":memory:":
        return SqliteFeed(url.database)
    return None  # an in-memory or unknown database: nothing to listen to, no cache


def init_app(app: Flask) -> None:
    with app.app_context():
        engine = db.engine
    max_age = app.config["MEMBER_CACHE_SECONDS"]
    cache = MemberCache(_feed_for(engine) if max_age > 0 else None, max_age)
    app.extensions["member_cache"] = cache
    # Disposing of the engine (tests, shutdown) closes the feed's connection with the pool's.
    event.listen(engine, "engine_disposed", lambda _engine: cache.close())
    if not event.contains(db.session, "after_commit", _forget_after_own_commit):
        event.listen(db.session, "after_commit", _forget_after_own_commit)


def _forget_after_own_commit(_session: Any) -> None:
    # This worker's own writes would otherwise be seen only once their notification arrives.
    if has_app_context() and (cache := current_app.extensions.get("member_cache")):
        cache.forget_everyone()


@event.listens_for(db.metadata, "after_create")
def _create_triggers(_metadata: Any, connection: Any, tables: list | None = None, **_kw) -> None:
    """`db.create_all()` (the tests) gets the triggers migration 0002 gives deployed databases."""
    if connection.dialect.name != "postgresql":
        return
    created = {table.name for table in tables or []}
    connection.exec_driver_sql(NOTIFY_FUNCTION_SQL)
    for table, column in WATCHED_TABLES.items():
        if table in created:
            connection.exec_driver_sql(trigger_sql(table, column))
