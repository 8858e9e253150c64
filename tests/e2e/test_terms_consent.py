"""Consent to the terms in Chromium: with `consent_collection` on, the hosted Checkout cannot be
paid until "I agree to the Terms of Service" is ticked; the terms page renders, is linked from
the footer, and reads at 1280 and 390 px without scrolling sideways."""

import re

import pytest
from playwright.sync_api import expect

from tests.conftest import sql
from tests.e2e.conftest import SHOTS, shoot
from tests.e2e.test_subscribe import open_account_until, pay, sign_up

CONSENT_ON = {"CHECKOUT_OVERRIDES": {"CHECKOUT_CONSENT_COLLECTION": "true"}}


def test_the_terms_page_from_the_footer(live_server, page):
    page.goto(f"{live_server.url}/pricing")
    page.get_by_role("contentinfo").get_by_role("link", name="Terms of Service").click()
    expect(page).to_have_url(f"{live_server.url}/terms")
    expect(page.get_by_role("heading", level=1)).to_have_text("Terms of Service")
    expect(page.get_by_role("row", name=re.compile("Professional"))).to_contain_text("$12.99")
    shoot(page, "terms", top=True)
    page.set_viewport_size({"width": 390, "height": 844})
    table = page.locator(".legal-table")
    table.screenshot(path=str(SHOTS / "terms-table-390.png"))
    # The whole price table fits a phone's width: no column hidden behind a scroll.
    assert table.evaluate("t => t.scrollWidth <= t.parentElement.clientWidth")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.get_by_role("contentinfo").get_by_role("link", name="Privacy Policy").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Privacy Policy")
    shoot(page, "privacy", top=True)


@pytest.mark.in_process
@pytest.mark.parametrize("config_overrides", [CONSENT_ON])
def test_checkout_cannot_be_paid_until_the_terms_are_ticked(live_server, page):
    url = live_server.url
    page.goto(f"{url}/pricing")
    page.locator("#plan-professional").get_by_role(
        "link", name=re.compile("Choose Professional")
    ).click()
    page.get_by_label("Email").fill("consent@example.com")
    page.get_by_label("Password").fill("a long enough password")
    page.get_by_role("button", name=re.compile("Sign up")).click()
    # The page before Checkout says what Checkout will ask.
    expect(page.get_by_test_id("terms-notice")).to_contain_text("agree to our Terms of Service")
    page.get_by_role("button", name="Continue to payment").click()

    expect(page.get_by_text("Sandbox — no real money")).to_be_visible()
    box = page.get_by_role("checkbox", name=re.compile("I agree to the LLMGen Terms of Service"))
    expect(box).not_to_be_checked()
    link = page.get_by_test_id("terms-label").get_by_role("link", name="Terms of Service")
    expect(link).to_have_attribute("href", f"{url}/terms")

    pay(page, "4242 4242 4242 4242", agree=False)  # without the tick
    expect(page.locator("#accept_terms-error")).to_have_text(
        "Please agree to the Terms of Service to continue."
    )
    expect(page.get_by_role("heading", level=1)).to_have_text("Pay for your subscription")
    assert sql(live_server.app, "select count(*) from subscriptions") == [(0,)]
    shoot(page, "checkout-refused", top=True)

    box.check()
    pay(page, "4242 4242 4242 4242")
    expect(page.get_by_role("heading", level=1)).to_contain_text("You're on Professional")
    open_account_until(page, url, "3,000")
    [(accepted_at,)] = sql(live_server.app, "select terms_accepted_at from checkout_sessions")
    assert accepted_at is not None


@pytest.mark.in_process
def test_without_the_option_the_checkout_has_no_box(live_server, page):
    page.goto(f"{live_server.url}/pricing")
    page.locator("#plan-starter").get_by_role("link", name=re.compile("Start with Starter")).click()
    sign_up(page, "plain@example.com")
    expect(page.get_by_text("Sandbox — no real money")).to_be_visible()
    expect(page.get_by_role("checkbox")).to_have_count(0)
