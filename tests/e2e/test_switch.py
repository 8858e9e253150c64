"""Switching plan from the pricing page in Chromium: the yearly card's Switch confirms the
yearly plan, at the price Stripe previews, and the account page shows the result.
Screenshots go to SHOTS_DIR (tests/e2e/conftest.py)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import shoot
from tests.e2e.test_subscribe import open_account_until, pay, sign_up
from webapp.stripe_gateway import get_gateway

# It reads and changes the app in process: not against a --base-url site.
pytestmark = pytest.mark.in_process


def cents(text: str) -> int:
    dollars, rest = re.fullmatch(r"\$([\d,]+)\.(\d\d)", text.strip()).groups()
    return int(dollars.replace(",", "")) * 100 + int(rest)


def test_switch_on_the_yearly_card_confirms_the_yearly_plan(live_server, page):
    url = live_server.url
    page.goto(f"{url}/signup?plan=professional&cycle=monthly")
    sign_up(page, "yearly-switch@example.com")
    pay(page, "4242 4242 4242 4242")
    expect(page.get_by_role("heading", level=1)).to_contain_text("You're on Professional")
    open_account_until(page, url, "3,000")

    # The reported bug: Switch on the Professional *yearly* card.
    page.goto(f"{url}/pricing?cycle=yearly")
    page.get_by_role("link", name="Switch to Professional, yearly").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Switch to Professional, yearly")
    expect(page.get_by_test_id("switch-plan")).to_have_text("Professional, billed yearly")
    summary = page.get_by_test_id("switch-summary")
    expect(summary).to_contain_text("credits now; Professional from today")
    amount = page.get_by_test_id("switch-amount").inner_text()
    shoot(page, "switch-upgrade")

    page.get_by_role("button", name=re.compile(r"^Pay \$[\d,.]+ and switch$")).click()
    expect(page.get_by_text("Your plan is now Professional (yearly).")).to_be_visible()
    expect(page.get_by_test_id("plan-name")).to_have_text("Professional")
    expect(page.locator(".facts")).to_contain_text("Yearly")
    shoot(page, "switch-done")
    with live_server.app.app_context():
        gateway = get_gateway()
        [subscription] = gateway.client.v1.subscriptions.list(params={"status": "active"}).data
        charged = gateway.retrieve_invoice(subscription.latest_invoice).amount_paid
    assert charged == cents(amount)  # what the page said, to the cent

    # A downgrade from the monthly card waits for the period end, and says so first.
    page.goto(f"{url}/pricing?cycle=monthly")
    page.get_by_role("link", name="Switch to Starter, monthly").click()
    expect(page.get_by_test_id("switch-summary")).to_contain_text(
        re.compile(r"Switches to Starter on \d{1,2} \w{3} \d{4}; no charge now\.")
    )
    expect(page.get_by_test_id("switch-amount")).to_have_text("$0.00")
    shoot(page, "switch-downgrade")
    page.get_by_role("button", name="Confirm switch").click()
    expect(
        page.get_by_text(re.compile(r"Your plan switches to Starter \(monthly\) on"))
    ).to_be_visible()
    expect(page.get_by_test_id("pending-change")).to_contain_text("Switches to Starter (monthly)")
