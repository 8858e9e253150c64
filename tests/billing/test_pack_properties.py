"""A pack is granted exactly once, and keeps exactly what stayed paid, whatever the order and
duplication of its webhooks, success-page visits and refunds (hypothesis; real SDK against
the sandbox; SQLite or PostgreSQL as the suite runs)."""

from __future__ import annotations

import json
from math import floor
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from tests.billing_helpers import pay, post_event
from tests.conftest import create_user, csrf_token, sql
from webapp.extensions import db
from webapp.sandbox.models import SandboxEvent
from webapp.stripe_gateway import InvalidRequest, get_gateway

PASSWORD = "correct horse battery staple"
CREDITS, PRICE = 500, 1999  # pkg_pro


@pytest.fixture
def config_overrides():
    # Nothing reaches our webhook by itself: the test delivers each event when it chooses.
    return {"SANDBOX_DELIVER_TO_SELF": False}


STEP = st.one_of(
    st.just(("success",)),
    st.tuples(st.just("deliver"), st.integers(0, 1000)),
    st.tuples(st.just("refund"), st.sampled_from([None, 1, 500, 999, 1500])),
)


def events_since(app, seq: int) -> list[dict]:
    with app.app_context():
        rows = db.session.scalars(
            select(SandboxEvent).where(SandboxEvent.seq > seq).order_by(SandboxEvent.seq)
        ).all()
        return [json.loads(row.data) for row in rows]


def last_seq(app) -> int:
    with app.app_context():
        rows = db.session.scalars(select(SandboxEvent.seq).order_by(SandboxEvent.seq.desc()))
        return rows.first() or 0


def member_ledger(app, user_id: int) -> list[tuple]:
    return sql(
        app,
        "select amount, type from credit_entries where user_id = :u order by id",
        u=user_id,
    )


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(STEP, max_size=10))
def test_a_pack_is_granted_once_and_keeps_what_stayed_paid(app, steps):
    client = app.test_client()
    email = f"p{last_seq(app)}-{len(steps)}@example.com"
    user_id = create_user(app, email=email, password=PASSWORD)
    client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": csrf_token(client, "/login")},
    )
    start = last_seq(app)
    started = client.post(
        "/checkout/pack",
        data={"pack": "pkg_pro", "csrf_token": csrf_token(client, "/account")},
    )
    paid = pay(client, started.headers["Location"])
    session_id = parse_qs(urlsplit(paid.headers["Location"]).query)["session_id"][0]
    with app.app_context():
        intent = get_gateway().retrieve_checkout_session(session_id).payment_intent
    refunded = 0

    def success() -> None:
        assert client.get(f"/checkout/pack/success?session_id={session_id}").status_code == 200

    for number, step in enumerate(steps):
        if step[0] == "success":
            success()
        elif step[0] == "deliver":
            events = events_since(app, start)
            assert post_event(client, events[step[1] % len(events)]).status_code == 200
        else:
            with app.app_context():
                try:
                    made = get_gateway().create_refund(
                        payment_intent_id=intent,
                        reason="requested_by_customer",
                        metadata={},
                        idempotency_key=f"{session_id}-{number}",
                        amount=step[1],
                    )
                    refunded += made.amount
                except InvalidRequest:
                    pass  # more than is left, or nothing left: Stripe refuses, nothing changes
        rows = member_ledger(app, user_id)
        # Never granted twice, never more than the pack, never below what stayed paid.
        assert [r for r in rows if r[1] == "purchase"] in ([], [(CREDITS, "purchase")])
        total = sum(r[0] for r in rows)
        assert floor(CREDITS * (PRICE - refunded) / PRICE) <= total or not rows
        assert total <= CREDITS
    # Everything arrives in the end (each event once more, and the buyer's page): exactly the
    # pack, less the share of what went back, rounded down.
    for event in events_since(app, start):
        post_event(client, event)
    success()
    rows = member_ledger(app, user_id)
    assert [r for r in rows if r[1] == "purchase"] == [(CREDITS, "purchase")]
    assert sum(r[0] for r in rows) == floor(CREDITS * (PRICE - refunded) / PRICE)
