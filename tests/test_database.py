"""`insert_or_ignore`, the one INSERT the billing ledger relies on to settle races, and the
pool's test of idle connections."""

import time
from datetime import datetime

import pytest
from sqlalchemy import create_engine, text

from webapp.database import insert_or_ignore
from webapp.extensions import db
from webapp.models.billing import WebhookEvent


def test_insert_or_ignore_inserts_once_and_fills_python_defaults(app):
    row = {"id": "evt_1", "type": "customer.created", "created": 1, "payload": {"a": [1]}}
    with app.app_context():
        assert insert_or_ignore(WebhookEvent, {**row, "status": "ignored"}, ["id"]) is True
        assert insert_or_ignore(WebhookEvent, {**row, "status": "failed"}, ["id"]) is False
        db.session.commit()
        event = db.session.get(WebhookEvent, "evt_1")
        assert event.status == "ignored"  # the first insert won; the second changed nothing
        assert event.payload == {"a": [1]}  # the JSON column's conversion still applies
        assert event.attempts == 0  # filled from the model's default
        assert isinstance(event.received_at, datetime)  # likewise, a callable default


def test_insert_or_ignore_on_a_connection_of_its_own(app):
    row = {"id": "evt_2", "type": "customer.created", "created": 1, "payload": {}}
    with app.app_context():
        autocommit = db.engine.execution_options(isolation_level="AUTOCOMMIT")
        with autocommit.connect() as connection:
            assert insert_or_ignore(WebhookEvent, {**row, "status": "ignored"}, ["id"], connection)
            assert not insert_or_ignore(WebhookEvent, {**row, "status": "x"}, ["id"], connection)
        # Committed by the statement itself: the session, which never saw it, reads it.
        assert db.session.get(WebhookEvent, "evt_2").status == "ignored"


# --- Pooled connections: tested before use only after sitting idle ----------------------------


def _count_pings(app, monkeypatch) -> list[int]:
    """Count the pool's liveness tests (the dialect's own ping, still run for real)."""
    pings: list[int] = []
    with app.app_context():
        dialect = db.engine.dialect
    real_ping = dialect.do_ping

    def counted(dbapi_connection):
        pings.append(1)
        return real_ping(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counted)
    return pings


def _query(app) -> int:
    with app.app_context():
        value = db.session.scalar(text("SELECT 1"))
        db.session.remove()
    return value


@pytest.mark.parametrize("config_overrides", [{"DATABASE_PING_AFTER_IDLE_SECONDS": 0.3}])
def test_a_connection_is_tested_only_after_sitting_idle(app, monkeypatch):
    pings = _count_pings(app, monkeypatch)
    assert _query(app) == 1  # a new connection: no test
    assert _query(app) == 1  # back within the window: no test
    assert pings == []
    time.sleep(0.4)
    assert _query(app) == 1
    assert pings == [1]


@pytest.mark.parametrize("config_overrides", [{"DATABASE_PING_AFTER_IDLE_SECONDS": 0}])
def test_a_window_of_zero_tests_every_checkout(app, monkeypatch):
    pings = _count_pings(app, monkeypatch)
    for _ in range(3):
        _query(app)
    assert len(pings) == 2  # all but the new connection's first use


@pytest.mark.postgres
@pytest.mark.parametrize("config_overrides", [{"DATABASE_PING_AFTER_IDLE_SECONDS": 0.2}])
def test_a_connection_the_server_ended_while_idle_is_replaced_without_a_failed_query(app):
    """A database restart, for one connection: PostgreSQL ends its backend while it sits in the
    pool; the next use finds it dead and gets a new one, and the query succeeds."""
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("a server that ends connections is PostgreSQL's; CI runs this on it")
    with app.app_context():
        old_backend = db.session.scalar(text("SELECT pg_backend_pid()"))
        db.session.remove()
        admin = create_engine(db.engine.url, isolation_level="AUTOCOMMIT")  # a pool of its own
        with admin.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": old_backend})
        admin.dispose()
        time.sleep(0.3)
        new_backend = db.session.scalar(text("SELECT pg_backend_pid()"))
        db.session.remove()
    assert new_backend != old_backend
