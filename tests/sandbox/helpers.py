"""Helpers for sandbox tests: a gateway in an app context, and paying on the hosted page."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from flask.testing import FlaskClient

from webapp.stripe_gateway import StripeGateway

CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def new_checkout(
    gateway: StripeGateway,
    *,
    email: str = "ada@example.com",
    lookup_key: str = "starter_monthly",
    user_id: int = 1,
    key: str = "1",
) -> Any:
    """A customer and an open subscription checkout session for them, as billing creates them."""
    customer = gateway.create_customer(email=email, user_id=user_id, idempotency_key=f"cus-{key}")
    price = gateway.price_for(lookup_key)
    plan, _, cycle = lookup_key.rpartition("_")
    return gateway.create_checkout_session(
        customer_id=customer.id,
        price_id=price.id,
        user_id=user_id,
        plan_id=plan,
        cycle=cycle,
        success_url="http://localhost/checkout/success?session_id={CHECKOUT_SESSION_ID}",
        cancel_url="http://localhost/pricing",
        idempotency_key=f"cs-{key}",
    )


def form_token(client: FlaskClient, path: str) -> tuple[str, str]:
    html = client.get(path).get_data(as_text=True)
    match = CSRF_RE.search(html)
    assert match, f"no CSRF token on {path}"
    return match.group(1), html


def pay(client: FlaskClient, session_url: str, card: str = "4242 4242 4242 4242", **extra: str):
    """Fill in the hosted checkout page as a person would, CSRF token included."""
    path = urlsplit(session_url).path
    token, _ = form_token(client, path)
    data = {"csrf_token": token, "card_number": card, "expiry": "12 / 34", "cvc": "123", **extra}
    return client.post(path, data=data)


def sandbox_of(app: Flask):
    return app.extensions["stripe_sandbox"]
