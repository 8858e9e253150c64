"""Every lookup the app makes can use an index (PostgreSQL's EXPLAIN says so).

The test records each SELECT, UPDATE and DELETE the app sends during a customer's whole journey
(sign-up, checkout, payment, webhooks, account, portal, API, API keys, a copy publish), then asks
PostgreSQL to plan each one with sequential scans priced out of reach. A statement whose plan
still scans a table has no index to use: on a table of millions of rows, it would read them all.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from tests.api.conftest import bearer, issue_api_key, issue_token
from tests.billing_helpers import subscribe
from tests.conftest import AuthActions, create_user, csrf_token
from webapp.extensions import db

# Tables we may scan whole: the sandbox stands in for Stripe and never runs in production.
SCANNABLE = ("sandbox_",)


@pytest.fixture
def statements(app: Flask, database_url: str) -> Iterator[list[tuple[str, object]]]:
    if not database_url.startswith("postgresql"):
        pytest.skip("EXPLAIN's plans are PostgreSQL's; CI runs this on PostgreSQL")
    seen: list[tuple[str, object]] = []

    def record(_conn, _cursor, statement, parameters, _context, _executemany) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper()
        if verb in ("SELECT", "UPDATE", "DELETE") and not any(
            name in statement for name in SCANNABLE
        ):
            seen.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def journey(app: Flask, client: FlaskClient) -> None:
    user_id = create_user(app)
    AuthActions(app, client).login()
    client.get("/pricing")
    subscribe(client, "professional")
    client.get("/account")
    client.post("/billing/portal", data={"csrf_token": csrf_token(client, "/account")})
    headers = bearer(issue_token(client))
    client.get("/api/v1/subscriptions/current", headers=headers)
    client.get("/api/v1/credits/balance", headers=headers)
    client.get("/api/v1/credits/history?type=usage", headers=headers)
    client.get("/account/credits?type=purchase")
    key_headers = bearer(issue_api_key(app, user_id))
    client.get("/api/v1/subscriptions/current/api", headers=key_headers)
    editor = app.test_client()
    create_user(app, email="editor@example.com", role="marketing")
    AuthActions(app, editor).login(email="editor@example.com")
    editor.get("/admin/plans")


def test_every_lookup_of_a_journey_can_use_an_index(app, client, statements):
    journey(app, client)
    assert len(statements) > 20, "the journey should have made plenty of queries"
    scans = {}
    with app.app_context(), db.engine.connect() as connection:
        cursor = connection.connection.dbapi_connection.cursor()
        cursor.execute("SET enable_seqscan = off")
        for statement, parameters in _distinct(statements):
            cursor.execute(f"EXPLAIN {statement}", parameters)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            if "Seq Scan" in plan:
                scans[statement] = plan
        connection.rollback()
    assert not scans, "statements without an index:\n\n" + "\n\n".join(
        f"{sql}\n{plan}" for sql, plan in scans.items()
    )


def _distinct(statements: list[tuple[str, object]]) -> list[tuple[str, object]]:
    """One (statement, parameters) per distinct statement text: the plan depends on the text."""
    first: dict[str, object] = {}
    for statement, parameters in statements:
        first.setdefault(statement, parameters)
    return list(first.items())
