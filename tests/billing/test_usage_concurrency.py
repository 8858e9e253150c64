"""Concurrent debits, for real: threads posting to the usage endpoint at once, each with its own
app context, session and database connection (SQLite's write lock; PostgreSQL's row lock)."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask

from tests.api.conftest import bearer
from webapp.billing.credits import add_entry
from webapp.extensions import db
from webapp.models import CreditEntry

TOKEN = "service-token-for-the-concurrency-test-0123"


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    # Fifty connections at once on PostgreSQL: a pool that does not make threads queue for it.
    return {
        "CREDITS_SERVICE_TOKEN": TOKEN,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 20, "max_overflow": 40, "pool_timeout": 60},
    }


def _grant(app: Flask, user_id: int, amount: int) -> None:
    with app.app_context():
        add_entry(user_id=user_id, amount=amount, grant_key="plan", description="Plan credits")
        db.session.commit()


def _debit_all_at_once(app: Flask, bodies: list[dict[str, Any]]) -> list[tuple[int, Any]]:
    start = threading.Barrier(len(bodies))

    def debit(body: dict[str, Any]) -> tuple[int, Any]:
        client = app.test_client()
        start.wait()
        response = client.post("/api/v1/credits/usage", json=body, headers=bearer(TOKEN))
        return response.status_code, response.get_json()

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(debit, bodies))


def _ledger(app: Flask, user_id: int) -> tuple[int, int]:
    with app.app_context():
        rows = db.session.scalars(
            db.select(CreditEntry.amount).where(CreditEntry.user_id == user_id)
        ).all()
        return sum(rows), len(rows)


def test_fifty_debits_of_a_balance_that_covers_twenty(app, user_id):
    _grant(app, user_id, 20)
    bodies = [
        {"userId": user_id, "amount": 1, "description": f"job {n}", "idempotencyKey": f"job-{n}"}
        for n in range(50)
    ]
    answers = _debit_all_at_once(app, bodies)
    assert Counter(status for status, _ in answers) == {200: 20, 402: 30}
    assert all(body["error"]["code"] == "insufficient_credits" for s, body in answers if s == 402)
    assert sorted(body["balance"] for s, body in answers if s == 200) == list(range(20))
    assert _ledger(app, user_id) == (0, 21)


def test_larger_debits_never_overdraw(app, user_id):
    _grant(app, user_id, 100)
    bodies = [
        {"userId": user_id, "amount": 30, "description": f"job {n}", "idempotencyKey": f"big-{n}"}
        for n in range(12)
    ]
    answers = _debit_all_at_once(app, bodies)
    assert Counter(status for status, _ in answers) == {200: 3, 402: 9}
    assert _ledger(app, user_id) == (10, 4)


def test_the_same_key_at_once_debits_once(app, user_id):
    _grant(app, user_id, 100)
    body = {"userId": user_id, "amount": 7, "description": "one job", "idempotencyKey": "same"}
    answers = _debit_all_at_once(app, [body] * 10)
    assert {status for status, _ in answers} == {200}
    assert len({str(answer) for _, answer in answers}) == 1  # the same answer, ten times
    assert _ledger(app, user_id) == (93, 2)
