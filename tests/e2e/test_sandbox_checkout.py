"""The hosted checkout page in Chromium: 4242 pays and lands on success_url; 0002 is declined."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from webapp.stripe_gateway import StripeGateway, get_gateway

# It reads and changes the app in process: not against a --base-url site.
pytestmark = [pytest.mark.e2e, pytest.mark.in_process]


@pytest.fixture
def sandbox_site(live_server) -> Iterator:
    yield live_server
    # The background webhook worker belongs to this server's app; stop it with the server.
    live_server.app.extensions["stripe_sandbox"].webhooks.stop_worker()


def open_checkout(site, gateway: StripeGateway, email: str):
    customer = gateway.create_customer(email=email, user_id=1, idempotency_key=f"e2e-{email}")
    price = gateway.price_for("professional_monthly")
    session = gateway.create_checkout_session(
        customer_id=customer.id,
        price_id=price.id,
        user_id=1,
        plan_id="professional",
        cycle="monthly",
        success_url=f"{site.url}/pricing?session_id={{CHECKOUT_SESSION_ID}}",
        cancel_url=f"{site.url}/pricing",
        idempotency_key=f"e2e-cs-{email}",
    )
    # Created outside a request, the session's URL names the default host; the path is the page.
    return session, site.url + urlsplit(session.url).path


def fill_card(page, number: str) -> None:
    page.get_by_label("Card number").fill(number)
    page.get_by_label("Expiry").fill("12 / 34")
    page.get_by_label("CVC").fill("123")
    page.get_by_role("button", name="Pay").click()


def test_paying_with_4242_reaches_the_success_url(sandbox_site, page):
    with sandbox_site.app.app_context():
        gateway = get_gateway()
        session, url = open_checkout(sandbox_site, gateway, "pays@example.com")
        page.goto(url)
        assert page.get_by_text("Sandbox — no real money").is_visible()
        fill_card(page, "4242 4242 4242 4242")
        page.wait_for_url(f"{sandbox_site.url}/pricing?session_id={session.id}")
        done = gateway.retrieve_checkout_session(session.id, expand=["subscription"])
        assert done.status == "complete"
        assert done.subscription.status == "active"


def test_the_0002_card_is_declined_and_nothing_is_created(sandbox_site, page):
    with sandbox_site.app.app_context():
        gateway = get_gateway()
        session, url = open_checkout(sandbox_site, gateway, "declined@example.com")
        page.goto(url)
        fill_card(page, "4000 0000 0000 0002")
        assert page.get_by_role("alert").inner_text().strip() == "Your card was declined."
        assert page.url == url
        assert gateway.retrieve_checkout_session(session.id).status == "open"
        assert gateway.list_subscriptions(session.customer) == []
