"""In Chromium: the 3-D Secure challenge at hosted Checkout (card 4000 0027 6000 3184), and
paying an open invoice on the hosted invoice page, with a new card and by confirming a renewal
that waits for 3-D Secure. Screenshots at 1280 and 390 px go to SHOTS_DIR."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import shoot
from tests.e2e.test_sandbox_checkout import fill_card, open_checkout
from webapp.stripe_gateway import StripeGateway, get_gateway

# It reads and changes the app in process: not against a --base-url site.
pytestmark = [pytest.mark.e2e, pytest.mark.in_process]


@pytest.fixture
def sandbox_site(live_server) -> Iterator:
    yield live_server
    live_server.app.extensions["stripe_sandbox"].webhooks.stop_worker()


def checkout_3ds(site, page, gateway: StripeGateway, email: str):
    """Check out in the browser with the 3-D Secure card, completing the challenge."""
    session, url = open_checkout(site, gateway, email)
    page.goto(url)
    fill_card(page, "4000 0027 6000 3184")
    page.wait_for_url("**/sandbox/3ds/**")
    page.get_by_role("button", name="Complete authentication").click()
    page.wait_for_url(f"{site.url}/pricing?session_id={session.id}")
    return session


def advance(site, page, days: int) -> None:
    reply = page.request.post(f"{site.url}/sandbox/control/advance", data={"days": days})
    assert reply.ok, reply.text()


def hosted_url(site, gateway: StripeGateway, invoice_id: str) -> str:
    return site.url + urlsplit(gateway.retrieve_invoice(invoice_id).hosted_invoice_url).path


def test_checkout_with_a_3ds_card_shows_the_challenge(sandbox_site, page):
    with sandbox_site.app.app_context():
        gateway = get_gateway()
        session, url = open_checkout(sandbox_site, gateway, "threeds@example.com")
        page.goto(url)
        fill_card(page, "4000 0027 6000 3184")
        page.wait_for_url("**/sandbox/3ds/**")
        assert page.get_by_role("heading", name="3D Secure 2 test page").is_visible()
        assert "card ending 3184" in page.inner_text("main")
        shoot(page, "3ds-challenge")
        # Failing goes back to Checkout with Stripe's message; nothing is paid.
        page.get_by_role("button", name="Fail authentication").click()
        page.wait_for_url(url)
        assert "unable to authenticate" in page.inner_text("body")
        assert gateway.retrieve_checkout_session(session.id).status == "open"
        fill_card(page, "4000 0027 6000 3184")
        page.get_by_role("button", name="Complete authentication").click()
        page.wait_for_url(f"{sandbox_site.url}/pricing?session_id={session.id}")
        done = gateway.retrieve_checkout_session(session.id, expand=["subscription"])
        assert done.status == "complete" and done.subscription.status == "active"


def test_paying_a_failed_renewal_on_the_hosted_invoice_page(sandbox_site, page):
    with sandbox_site.app.app_context():
        gateway = get_gateway()
        session, url = open_checkout(sandbox_site, gateway, "renewal@example.com")
        page.goto(url)
        fill_card(page, "4000 0000 0000 0341")
        page.wait_for_url(f"{sandbox_site.url}/pricing?session_id={session.id}")
        sub_id = gateway.retrieve_checkout_session(session.id).subscription
        advance(sandbox_site, page, 32)
        sub = gateway.retrieve_subscription(sub_id)
        assert sub.status == "past_due"
        page.goto(hosted_url(sandbox_site, gateway, sub.latest_invoice))
        assert page.get_by_role("heading", name="Invoice from LLMGen (sandbox)").is_visible()
        assert page.locator("#invoice-status").inner_text() == "Open"
        shoot(page, "hosted-invoice-open")
        page.get_by_label("Card number").fill("4242 4242 4242 4242")
        page.get_by_label("Expiry").fill("12 / 34")
        page.get_by_label("CVC").fill("123")
        page.get_by_role("button", name="Pay").click()
        page.get_by_text("Payment complete").wait_for()
        assert page.locator("#invoice-status").inner_text() == "Paid"
        shoot(page, "hosted-invoice-paid")
        assert gateway.retrieve_subscription(sub_id).status == "active"


def test_confirming_a_3ds_renewal_on_the_hosted_invoice_page(sandbox_site, page):
    with sandbox_site.app.app_context():
        gateway = get_gateway()
        session = checkout_3ds(sandbox_site, page, gateway, "confirm@example.com")
        sub_id = gateway.retrieve_checkout_session(session.id).subscription
        advance(sandbox_site, page, 32)
        sub = gateway.retrieve_subscription(sub_id)
        assert sub.status == "past_due"
        page.goto(hosted_url(sandbox_site, gateway, sub.latest_invoice))
        assert "confirm this payment with the card ending 3184" in page.inner_text("main")
        shoot(page, "hosted-invoice-action-required")
        page.get_by_role("button", name="Confirm payment").click()
        page.wait_for_url("**/sandbox/3ds/**")
        page.get_by_role("button", name="Complete authentication").click()
        page.get_by_text("Payment complete").wait_for()
        assert gateway.retrieve_subscription(sub_id).status == "active"
        assert gateway.retrieve_invoice(sub.latest_invoice).status == "paid"
