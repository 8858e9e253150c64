"""One live subscription per user, when two checkouts were still both paid (two tabs).

Checkout starts are serialised and a second start is refused once Stripe shows a live
subscription; but a session opened earlier (another tab, an API client) can still be paid.
Then the newer subscription is cancelled at once and refunded in full, its credits go back with
the refund, and the success and account pages say so.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.billing_helpers import pay, start_checkout
from tests.conftest import sql
from webapp import billing
from webapp.extensions import db
from webapp.models import User
from webapp.stripe_gateway import get_gateway


def open_session(app, user_id: int, plan: str, key: str) -> str:
    """A Checkout Session made the way billing makes one (as an older tab or client did)."""
    with app.app_context():
        user = db.session.get(User, user_id)
        customer = billing.ensure_customer(user)
        gateway = get_gateway()
        session = gateway.create_checkout_session(
            customer_id=customer,
            price_id=gateway.price_for(f"{plan}_monthly").id,
            user_id=user_id,
            plan_id=plan,
            cycle="monthly",
            success_url="http://localhost/checkout/success?session_id={CHECKOUT_SESSION_ID}",
            cancel_url="http://localhost/pricing",
            idempotency_key=f"two-tabs-{key}",
        )
        db.session.add(
            billing.checkout.CheckoutSession(
                user_id=user_id,
                stripe_session_id=session.id,
                plan_id=plan,
                cycle="monthly",
                url=session.url,
            )
        )
        db.session.commit()
        return session.url


@pytest.mark.parametrize("order", ["in turn", "reversed"])
def test_the_newer_of_two_paid_subscriptions_is_cancelled_and_refunded(
    app, client, auth, user_id, order
):
    first = open_session(app, user_id, "professional", "a")
    second = open_session(app, user_id, "business", "b")
    auth.login()
    for url in (first, second) if order == "in turn" else (second, first):
        assert pay(client, url).status_code == 303

    statuses = dict(sql(app, "select plan_id, status from subscriptions"))
    # The first paid is the older subscription at Stripe, so it is the one kept.
    kept, dropped = (
        ("professional", "business") if order == "in turn" else ("business", "professional")
    )
    assert statuses == {kept: "active", dropped: "canceled"}
    [(duplicate_of,)] = sql(
        app, "select duplicate_of from subscriptions where plan_id = :p", p=dropped
    )
    assert duplicate_of is not None
    # Refunded in full at Stripe; the credits that payment bought are taken back.
    [(refunds,)] = sql(app, "select count(*) from sandbox_objects where object = 'refund'")
    assert refunds == 1
    credits = {"professional": 3000, "business": 10000}
    assert billing_balance(app, user_id) == credits[kept]

    # The dropped checkout's success page and the account page say what happened.
    session_id = session_of(app, dropped)
    page = client.get(f"/checkout/success?session_id={session_id}").get_data(as_text=True)
    assert "You already have a plan" in page and "refunded it in full" in page
    account = client.get("/account").get_data(as_text=True)
    assert 'data-testid="duplicate-notice"' in account
    assert 'data-testid="plan-name">' + kept.capitalize() in account


def billing_balance(app, user_id: int) -> int:
    with app.app_context():
        return billing.credit_summary(user_id).balance


def session_of(app, plan: str) -> str:
    [(session_id,)] = sql(
        app, "select stripe_session_id from checkout_sessions where plan_id = :p", p=plan
    )
    return session_id


def test_a_second_checkout_is_refused_when_stripe_already_has_a_live_one(
    app, client, auth, user_id
):
    """Paid moments ago, its webhook not here yet: Stripe is asked before a new session."""
    url = open_session(app, user_id, "starter", "early")
    auth.login()
    with app.app_context():
        app.config["SANDBOX_DELIVER_TO_SELF"] = False  # the webhooks are late
    assert pay(client, url).status_code == 303
    assert sql(app, "select count(*) from subscriptions") == [(0,)]
    response = start_checkout(client, "agency", "monthly")
    assert response.status_code == 303 and urlsplit(response.headers["Location"]).path == "/account"
    # The refusal stored what Stripe said, so the account page already shows the plan.
    assert sql(app, "select plan_id, status from subscriptions") == [("starter", "active")]
