"""The hosted checkout page and the customer portal, through the test client (CSRF on)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from flask import Flask

from tests.sandbox.helpers import new_checkout, pay
from webapp.stripe_gateway import StripeGateway


def event_types(gateway: StripeGateway) -> list[str]:
    """Every event so far, oldest first."""
    listed = gateway.client.v1.events.list(params={"limit": 100})
    return [event.type for event in reversed(listed.data)]


def test_checkout_page_shows_the_order_and_the_card_form(app: Flask, gateway: StripeGateway):
    session = new_checkout(gateway, lookup_key="professional_yearly")
    html = app.test_client().get(urlsplit(session.url).path).get_data(as_text=True)
    assert "Sandbox — no real money" in html
    # Inside a landmark, as every piece of content (axe-core's "region" rule).
    assert re.search(r'<aside class="banner banner-sandbox" aria-label="[^"]+"><p>Sandbox', html)
    assert "ada@example.com" in html and "Yearly" in html
    for label in ("Card number", "Expiry", "CVC"):
        assert f">{label}</label>" in html
    assert ">Pay</button>" in html
    assert 'href="http://localhost/pricing"' in html
    assert "<script" not in html and "style=" not in html


def test_paying_with_4242_completes_everything_and_redirects(app: Flask, gateway):
    session = new_checkout(gateway)
    response = pay(app.test_client(), session.url)
    assert response.status_code == 303
    assert response.headers["Location"] == session.success_url

    done = gateway.retrieve_checkout_session(session.id, expand=["subscription", "invoice"])
    assert done.status == "complete" and done.payment_status == "paid"
    assert done.subscription.status == "active"
    assert done.invoice.billing_reason == "subscription_create"
    assert done.invoice.amount_paid == done.amount_total
    types = event_types(gateway)
    for expected in (
        "customer.subscription.created",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
        "checkout.session.completed",
    ):
        assert expected in types
    assert types[-1] == "checkout.session.completed"


def test_paying_creates_the_customer_when_the_session_has_only_an_email(app: Flask, gateway):
    price = gateway.price_for("starter_yearly")
    session = gateway.client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer_email": "new@example.com",
            "line_items": [{"price": price.id, "quantity": 1}],
            "success_url": "http://localhost/ok?cs={CHECKOUT_SESSION_ID}",
        }
    )
    assert pay(app.test_client(), session.url).status_code == 303
    done = gateway.retrieve_checkout_session(session.id, expand=["customer"])
    assert done.customer.email == "new@example.com"
    assert "customer.created" in event_types(gateway)


@pytest.mark.parametrize(
    ("card", "message"),
    [
        ("4000 0000 0000 0002", "Your card was declined."),
        ("4000000000009995", "Your card has insufficient funds."),
        ("4242 4242 4242 4241", "Your card number is invalid."),
    ],
)
def test_declined_cards_show_the_reason_and_keep_the_session_open(app, gateway, card, message):
    session = new_checkout(gateway)
    response = pay(app.test_client(), session.url, card)
    assert response.status_code == 402
    assert message in response.get_data(as_text=True)
    assert gateway.retrieve_checkout_session(session.id).status == "open"
    customer = gateway.retrieve_checkout_session(session.id).customer
    assert gateway.list_subscriptions(customer) == []


def test_a_paid_session_cannot_be_paid_again(app: Flask, gateway: StripeGateway):
    session = new_checkout(gateway)
    client = app.test_client()
    assert pay(client, session.url).status_code == 303
    html = client.get(urlsplit(session.url).path).get_data(as_text=True)
    assert "can no longer be paid" in html
    assert (
        len(gateway.list_subscriptions(gateway.retrieve_checkout_session(session.id).customer)) == 1
    )


def test_checkout_without_csrf_is_refused(app: Flask, gateway: StripeGateway):
    session = new_checkout(gateway)
    data = {"card_number": "4242424242424242", "expiry": "12/34", "cvc": "123"}
    response = app.test_client().post(urlsplit(session.url).path, data=data)
    assert response.status_code == 400
    assert gateway.retrieve_checkout_session(session.id).status == "open"


def test_unknown_checkout_page_is_404(app: Flask):
    assert app.test_client().get("/sandbox/checkout/cs_test_nope").status_code == 404
