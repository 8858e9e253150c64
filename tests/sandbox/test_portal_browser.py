"""The hosted portal in Chromium at a phone's width (390 px): usable with labels and keyboard,
no sideways scrolling, and never left on a POST address after an action."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import CHROMIUM_ARGS, CHROMIUM_PATH, live_server  # noqa: F401
from tests.sandbox.helpers import open_portal
from webapp.stripe_gateway import get_gateway

pytestmark = pytest.mark.e2e


@pytest.fixture
def config_overrides():
    return {"SANDBOX_DELIVER_TO_SELF": False}


def on_a_phone(steps: Callable[[Any], None]) -> None:
    """Run `steps` with a 390 px wide page, in a thread of its own: the browser tests'
    session-wide Playwright may already be running in this one, and the sync API allows one
    per thread."""
    from playwright.sync_api import sync_playwright

    failure: list[BaseException] = []

    def run() -> None:
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS
                )
                context = browser.new_context(viewport={"width": 390, "height": 844})
                context.set_default_timeout(15_000)
                try:
                    steps(context.new_page())
                finally:
                    browser.close()
        except BaseException as exc:  # handed back to the test's thread
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(120)
    assert not thread.is_alive(), "the browser steps did not finish"
    if failure:
        raise failure[0]


def fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_the_portal_works_at_390px(live_server):  # noqa: F811
    on_a_phone(lambda phone: portal_steps(live_server, phone))


def portal_steps(live_server, phone) -> None:  # noqa: F811
    app = live_server.app
    with app.app_context():
        gateway = get_gateway()
        customer = gateway.create_customer(
            email="phone@example.com", user_id=1, idempotency_key="p"
        )
        session = gateway.client.v1.checkout.sessions.create(
            params={
                "mode": "subscription",
                "customer": customer.id,
                "line_items": [{"price": gateway.price_for("business_monthly").id, "quantity": 1}],
                "success_url": f"{live_server.url}/pricing",
            }
        )
    phone.goto(live_server.url + urlsplit(session.url).path)
    phone.get_by_label("Card number").fill("4242 4242 4242 4242")
    phone.get_by_label("Expiry").fill("12 / 34")
    phone.get_by_label("CVC").fill("123")
    phone.get_by_role("button", name="Pay").click()
    phone.wait_for_url("**/pricing")
    with app.app_context():
        portal = open_portal(gateway, customer.id)
    path = urlsplit(portal.url).path

    phone.goto(live_server.url + path)
    expect(phone.get_by_role("heading", level=1)).to_have_text("Manage your subscription")
    assert fits(phone)

    # A downgrade is scheduled; the page says when, and offers to keep the plan.
    phone.get_by_label("New plan").select_option(label="Starter — $4.99 monthly")
    phone.get_by_role("button", name="Switch plan").click()
    expect(phone.locator("#scheduled-change")).to_contain_text("Switches to Starter")
    assert urlsplit(phone.url).path == path
    assert fits(phone)
    phone.get_by_role("button", name="Cancel scheduled change").click()
    expect(phone.get_by_role("status")).to_contain_text("scheduled change is canceled")

    # Cancelling asks why, with the keyboard as well as the mouse.
    phone.get_by_role("radio", name="It's too expensive").check()
    phone.get_by_role("button", name="Cancel at period end").click()
    expect(phone.get_by_role("status")).to_contain_text("Your plan will end on")
    assert urlsplit(phone.url).path == path
    assert fits(phone)
    phone.get_by_role("button", name="Don't cancel (resume)").click()
    expect(phone.get_by_role("status")).to_contain_text("renew as usual")
