"""Helpers for sandbox tests: a gateway in an app context, and paying on the hosted page."""

from __future__ import annotations

import re
import weakref
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
    option_params: dict[str, Any] | None = None,
) -> Any:
    """A customer and an open subscription checkout session for them, as billing creates them
    (with `option_params`: the checkout options, e.g. `{"allow_promotion_codes": True}`)."""
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
        option_params=option_params,
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


_CLIENTS: weakref.WeakKeyDictionary[Flask, FlaskClient] = weakref.WeakKeyDictionary()


def client_of(app: Flask) -> FlaskClient:
    """One browser per test app. Under the tests' pushed app context Flask-WTF keeps the
    first CSRF token it made in `g`, so a second client would post without its token."""
    if app not in _CLIENTS:
        _CLIENTS[app] = app.test_client()
    return _CLIENTS[app]


def sandbox_of(app: Flask):
    return app.extensions["stripe_sandbox"]


def subscribe(
    app: Flask,
    gateway: StripeGateway,
    *,
    card: str = "4242424242424242",
    lookup_key: str = "starter_monthly",
    key: str = "1",
    email: str = "ada@example.com",
) -> Any:
    """A customer who paid a checkout on the hosted page: their subscription."""
    session = new_checkout(gateway, lookup_key=lookup_key, key=key, email=email)
    response = pay(client_of(app), session.url, card)
    assert response.status_code == 303, response.get_data(as_text=True)
    return gateway.retrieve_subscription(gateway.retrieve_checkout_session(session.id).subscription)


THREE_DS_CARD = "4000002760003184"  # asks for 3-D Secure on every charge


def answer_challenge(client: FlaskClient, location: str, action: str):
    """Press "Complete authentication" or "Fail authentication" on the 3-D Secure test page
    at `location`."""
    path = urlsplit(location).path
    assert path.startswith("/sandbox/3ds/"), location
    token, html = form_token(client, path)
    assert "Complete authentication" in html and "Fail authentication" in html
    return client.post(path, data={"csrf_token": token, "action": action})


def subscribe_3ds(app: Flask, gateway: StripeGateway, key: str = "1") -> Any:
    """A customer who checked out with the 3-D Secure card and completed the challenge."""
    session = new_checkout(gateway, key=key)
    client = client_of(app)
    started = pay(client, session.url, THREE_DS_CARD)
    assert started.status_code == 303
    done = answer_challenge(client, started.headers["Location"], "complete")
    assert done.status_code == 303
    assert done.headers["Location"].endswith(f"session_id={session.id}")
    return gateway.retrieve_subscription(gateway.retrieve_checkout_session(session.id).subscription)


def advance(app: Flask, days: float = 0, seconds: int = 0) -> None:
    """Move the sandbox's test clock on (renewals, cancellations, schedule phases…)."""
    response = app.test_client().post(
        "/sandbox/control/advance", json={"days": days, "seconds": seconds}
    )
    assert response.status_code == 200, response.get_data(as_text=True)


def event_types(gateway: StripeGateway) -> list[str]:
    """Every event so far, oldest first."""
    listed = gateway.client.v1.events.list(params={"limit": 100})
    return [event.type for event in reversed(list(listed.auto_paging_iter()))]


def events_of(gateway: StripeGateway, event_type: str) -> list[Any]:
    """The events of one type, newest first."""
    return gateway.client.v1.events.list(params={"type": event_type, "limit": 100}).data


def raw(obj: Any) -> dict[str, Any]:
    """The JSON the sandbox sent for an SDK object."""
    import json

    return json.loads(obj.last_response.body)


def catalog_products(gateway: StripeGateway) -> list[dict[str, Any]]:
    """Every product of the catalog with its monthly and yearly prices, for a configuration."""
    gateway.price_for("starter_monthly")  # the sandbox sells the catalog from then on
    prices = gateway.client.v1.prices.list(params={"active": True, "limit": 100}).data
    by_product: dict[str, list[str]] = {}
    for price in prices:
        # The plans' recurring prices: a credit pack's one-time price is no portal offer.
        if price.lookup_key and price.recurring is not None:
            by_product.setdefault(price.product, []).append(price.id)
    return [{"product": product, "prices": ids} for product, ids in by_product.items()]


def portal_configuration(gateway: StripeGateway, **features: Any) -> Any:
    """A portal configuration like the one our billing code sets up: every plan offered,
    upgrades now (always_invoice), downgrades and shorter intervals at the period end,
    cancellation at the period end with a reason, card updates and invoices."""
    settings: dict[str, Any] = {
        "subscription_update": {
            "enabled": True,
            "default_allowed_updates": ["price"],
            "products": catalog_products(gateway),
            "proration_behavior": "always_invoice",
            "schedule_at_period_end": {
                "conditions": [{"type": "decreasing_item_amount"}, {"type": "shortening_interval"}]
            },
        },
        "subscription_cancel": {
            "enabled": True,
            "mode": "at_period_end",
            "cancellation_reason": {
                "enabled": True,
                "options": ["too_expensive", "unused", "other"],
            },
        },
        "payment_method_update": {"enabled": True},
        "invoice_history": {"enabled": True},
    }
    for name, value in features.items():
        settings[name] = value
    return gateway.client.v1.billing_portal.configurations.create(params={"features": settings})


def open_portal(gateway: StripeGateway, customer_id: str, configuration: str | None = None):
    """A portal session on `configuration`, or on a new one made by `portal_configuration`.

    Never the account's default: the app makes its own configuration (the plan-change policy's)
    when it first sells the catalog, and these tests are about the sandbox, not that policy.
    """
    configuration = configuration or portal_configuration(gateway).id
    params = {
        "customer": customer_id,
        "return_url": "http://localhost/account",
        "configuration": configuration,
    }
    return gateway.client.v1.billing_portal.sessions.create(params=params)


def update_card(
    app: Flask, gateway: StripeGateway, customer_id: str, card: str = "4242424242424242"
) -> Any:
    """Replace the customer's card on the hosted portal page, as a person would (the portal
    then pays the customer's open invoices with it)."""
    portal = open_portal(gateway, customer_id)
    client = client_of(app)
    path = urlsplit(portal.url).path
    token, _ = form_token(client, path)
    data = {"csrf_token": token, "card_number": card, "expiry": "12 / 34", "cvc": "123"}
    return client.post(f"{path}/card", data=data)
