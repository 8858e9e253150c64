"""Checkout, current subscription, portal and credits, in both flavours, against the sandbox."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.api.conftest import Caller, assert_conforms
from tests.sandbox.helpers import pay
from webapp.extensions import db
from webapp.models import CreditEntry, Subscription


def add_subscription(app: Flask, user_id: int, **fields) -> None:
    """A paid-up subscription row, as the webhooks would have stored it."""
    values = {
        "stripe_subscription_id": f"sub_api_{user_id}",
        "stripe_customer_id": f"cus_api_{user_id}",
        "stripe_price_id": "price_api",
        "plan_id": "professional",
        "cycle": "monthly",
        "status": "active",
        "current_period_start": datetime(2024, 1, 15, tzinfo=UTC),
        "current_period_end": datetime(2024, 2, 15, tzinfo=UTC),
        **fields,
    }
    with app.app_context():
        db.session.add(Subscription(user_id=user_id, **values))
        db.session.commit()


def checkout(client: FlaskClient, caller: Caller, **body):
    return client.post(caller.path("/subscriptions/checkout"), json=body, headers=caller.headers)


# --- checkout ---------------------------------------------------------------------------------


def test_checkout_for_professional_has_exactly_the_documented_shape(client, caller):
    response = checkout(client, caller, planId="professional")
    assert response.status_code == 200
    body = assert_conforms(response, "POST", "/subscriptions/checkout" + caller.suffix)
    assert set(body) == {"sessionId", "url", "plan"}
    assert body["sessionId"].startswith("cs_")
    assert body["url"].startswith("http")
    assert body["plan"] == {
        "id": "professional",
        "name": "Professional",
        "monthlyCredits": 3000,
        "priceCents": 1299,
    }


def test_checkout_yearly_prices_the_yearly_cycle(client, caller):
    response = checkout(client, caller, planId="professional", billingCycle="yearly")
    assert response.status_code == 200
    assert response.get_json()["plan"]["priceCents"] == 12990


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"planId": "gold"}, "invalid_plan"),
        ({"planId": "Professional"}, "invalid_plan"),
        ({"planId": ""}, "invalid_plan"),
        ({"planId": "starter", "billingCycle": "weekly"}, "invalid_billing_cycle"),
        ({"planId": "starter", "billingCycle": ""}, "invalid_billing_cycle"),
        ({"planId": "starter", "successUrl": "https://evil.example"}, "invalid_redirect_url"),
        ({"planId": "starter", "cancelUrl": "//evil.example/"}, "invalid_redirect_url"),
        ({"planId": "starter", "successUrl": "javascript:alert(1)"}, "invalid_redirect_url"),
        ({}, "validation_error"),
        ({"planId": 7}, "validation_error"),
        ({"planId": None}, "validation_error"),
        ({"planId": ["starter"]}, "validation_error"),
        ({"planId": "starter", "billingCycle": 1}, "validation_error"),
        ({"planId": "starter", "successUrl": {"url": "x"}}, "validation_error"),
        ({"planId": "starter", "plan_id": "starter"}, "validation_error"),
    ],
)
def test_checkout_refuses_bad_requests(client, caller, body, code):
    response = checkout(client, caller, **body)
    assert response.status_code == 400
    error = assert_conforms(response, "POST", "/subscriptions/checkout" + caller.suffix)["error"]
    assert error["code"] == code
    assert error["message"]


def test_checkout_accepts_redirects_to_the_site_itself(client, caller):
    response = checkout(
        client,
        caller,
        planId="starter",
        successUrl="http://localhost/account?welcome=1&session={CHECKOUT_SESSION_ID}",
        cancelUrl="http://localhost/pricing",
    )
    assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize("config_overrides", [{"ALLOWED_REDIRECT_HOSTS": ["app.partner.example"]}])
def test_checkout_accepts_configured_redirect_hosts_only(client, caller):
    allowed = checkout(
        client, caller, planId="starter", successUrl="https://app.partner.example/ok"
    )
    assert allowed.status_code == 200, allowed.get_json()
    # With an explicit list, even the site's own host is no longer implied.
    refused = checkout(client, caller, planId="business", successUrl="http://localhost/account")
    assert refused.get_json()["error"]["code"] == "invalid_redirect_url"


def test_second_checkout_while_subscribed_is_refused(app, client, caller, user_id):
    add_subscription(app, user_id)
    response = checkout(client, caller, planId="business")
    assert response.status_code == 400
    body = assert_conforms(response, "POST", "/subscriptions/checkout" + caller.suffix)
    assert body["error"]["code"] == "subscription_exists"


def test_pay_then_current_portal_and_credits(app, client, caller):
    """The whole flow of the README: checkout, pay on the sandbox page, then read it back."""
    started = checkout(client, caller, planId="professional").get_json()
    paid = pay(client, started["url"])
    assert paid.status_code in (302, 303), paid.get_data(as_text=True)[:500]

    current = client.get(caller.path("/subscriptions/current"), headers=caller.headers)
    body = assert_conforms(current, "GET", "/subscriptions/current" + caller.suffix)
    assert body["hasSubscription"] is True
    assert body["subscription"]["plan"] == "professional"
    assert body["subscription"]["status"] == "active"
    assert body["subscription"]["billingCycle"] == "monthly"
    assert body["subscription"]["cancelAtPeriodEnd"] is False
    assert body["subscription"]["currentPeriodEnd"].endswith("Z")
    assert body["planDetails"] == {
        "id": "professional",
        "name": "Professional",
        "monthlyCredits": 3000,
        "price": 12.99,
        "features": ["3,000 credits/month", "Priority support", "Advanced analytics"],
    }

    credits = client.get(caller.path("/credits/balance"), headers=caller.headers)
    body = assert_conforms(credits, "GET", "/credits/balance" + caller.suffix)
    assert body["balance"] == 3000 and body["totalPurchased"] == 3000 and body["totalUsed"] == 0
    assert [entry["amount"] for entry in body["recentTransactions"]] == [3000]

    portal = client.post(caller.path("/subscriptions/portal"), headers=caller.headers)
    body = assert_conforms(portal, "POST", "/subscriptions/portal" + caller.suffix)
    assert client.get(urlsplit(body["url"]).path).status_code == 200

    again = checkout(client, caller, planId="starter")
    assert again.get_json()["error"]["code"] == "subscription_exists"


# --- current ----------------------------------------------------------------------------------


def test_current_without_subscription(client, caller):
    response = client.get(caller.path("/subscriptions/current"), headers=caller.headers)
    assert response.status_code == 200
    body = assert_conforms(response, "GET", "/subscriptions/current" + caller.suffix)
    assert body == {"hasSubscription": False, "subscription": None, "planDetails": None}


def test_current_matches_the_contract_example(app, client, caller, user_id):
    add_subscription(app, user_id)
    response = client.get(caller.path("/subscriptions/current"), headers=caller.headers)
    body = assert_conforms(response, "GET", "/subscriptions/current" + caller.suffix)
    assert body["subscription"] == {
        "plan": "professional",
        "status": "active",
        "billingCycle": "monthly",
        "currentPeriodStart": "2024-01-15T00:00:00Z",
        "currentPeriodEnd": "2024-02-15T00:00:00Z",
        "cancelAtPeriodEnd": False,
        # Ours, beside the contract's fields: when it ends, and a switch it has scheduled.
        "cancelAt": None,
        "scheduledChange": None,
    }
    assert body["planDetails"]["price"] == 12.99


def test_current_says_when_it_ends_and_what_it_switches_to(app, client, caller, user_id):
    """Flexible billing mode schedules a cancellation as `cancel_at` alone."""
    add_subscription(
        app,
        user_id,
        cancel_at=datetime(2024, 2, 15, tzinfo=UTC),
        pending_plan_id="starter",
        pending_cycle="monthly",
        pending_change_at=datetime(2024, 2, 15, tzinfo=UTC),
    )
    response = client.get(caller.path("/subscriptions/current"), headers=caller.headers)
    body = assert_conforms(response, "GET", "/subscriptions/current" + caller.suffix)
    assert body["subscription"]["cancelAtPeriodEnd"] is True
    assert body["subscription"]["cancelAt"] == "2024-02-15T00:00:00Z"
    assert body["subscription"]["scheduledChange"] == {
        "plan": "starter",
        "billingCycle": "monthly",
        "effectiveAt": "2024-02-15T00:00:00Z",
    }


def test_current_yearly_prices_the_yearly_cycle(app, client, caller, user_id):
    add_subscription(app, user_id, cycle="yearly", cancel_at_period_end=True)
    body = client.get(caller.path("/subscriptions/current"), headers=caller.headers).get_json()
    assert body["planDetails"]["price"] == 129.9
    assert body["subscription"]["cancelAtPeriodEnd"] is True


@pytest.mark.parametrize("status", ["canceled", "incomplete", "unpaid"])
def test_current_without_access_reads_as_no_subscription(app, client, caller, user_id, status):
    add_subscription(app, user_id, status=status)
    body = client.get(caller.path("/subscriptions/current"), headers=caller.headers).get_json()
    assert body == {"hasSubscription": False, "subscription": None, "planDetails": None}


# --- portal -----------------------------------------------------------------------------------


def test_portal_without_billing_account(client, caller):
    response = client.post(caller.path("/subscriptions/portal"), headers=caller.headers)
    assert response.status_code == 400
    body = assert_conforms(response, "POST", "/subscriptions/portal" + caller.suffix)
    assert body["error"]["code"] == "no_billing_account"


def test_portal_return_url_is_allowlisted(client, caller):
    checkout(client, caller, planId="starter")  # creates the Stripe customer
    evil = client.post(
        caller.path("/subscriptions/portal"),
        json={"returnUrl": "https://evil.example/"},
        headers=caller.headers,
    )
    assert evil.status_code == 400
    assert evil.get_json()["error"]["code"] == "invalid_redirect_url"
    good = client.post(
        caller.path("/subscriptions/portal"),
        json={"returnUrl": "http://localhost/account"},
        headers=caller.headers,
    )
    assert good.status_code == 200
    assert_conforms(good, "POST", "/subscriptions/portal" + caller.suffix)


# --- credits ----------------------------------------------------------------------------------


def test_credits_balance_from_the_ledger(app, client, caller, user_id):
    with app.app_context():
        for amount, kind in [(3000, "purchase"), (-120, "usage"), (-30, "usage")]:
            db.session.add(
                CreditEntry(
                    user_id=user_id, amount=amount, type=kind, kind=kind, description=f"{kind} test"
                )
            )
        db.session.commit()
    response = client.get(caller.path("/credits/balance"), headers=caller.headers)
    body = assert_conforms(response, "GET", "/credits/balance" + caller.suffix)
    assert body["balance"] == 2850
    assert body["totalPurchased"] == 3000
    assert body["totalUsed"] == 150
    assert len(body["recentTransactions"]) == 3
    assert {entry["amount"] for entry in body["recentTransactions"]} == {3000, -120, -30}
    assert all(entry["createdAt"].endswith("Z") for entry in body["recentTransactions"])


def test_credits_of_a_new_user(client, caller):
    body = client.get(caller.path("/credits/balance"), headers=caller.headers).get_json()
    assert body == {
        "balance": 0,
        "totalPurchased": 0,
        "totalUsed": 0,
        "totalTakenBack": 0,
        "recentTransactions": [],
    }


# --- plans (public) ---------------------------------------------------------------------------


def test_plans_are_public_with_both_cycles(client):
    response = client.get("/api/v1/plans")
    assert response.status_code == 200
    body = assert_conforms(response, "GET", "/plans")
    assert [plan["id"] for plan in body["plans"]] == [
        "starter",
        "professional",
        "business",
        "agency",
    ]
    professional = body["plans"][1]
    assert professional["name"] == "Professional"
    assert professional["monthlyCredits"] == 3000
    assert professional["prices"]["monthly"] == {"priceCents": 1299, "price": 12.99}
    assert professional["prices"]["yearly"] == {"priceCents": 12990, "price": 129.9}
