"""Subscribing end to end in Chromium: pricing → sign-up → Checkout → account → portal → clock."""

import re
import time

import pytest
from playwright.sync_api import expect

from tests.conftest import sql
from tests.e2e.conftest import unique_email


def sign_up(page, email: str, *, plan_chosen: bool = True) -> None:
    """Sign up; with a plan chosen, go on to pay from the page such a sign-up lands on."""
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("a long enough password")
    page.get_by_role("button", name=re.compile("Sign up")).click()
    if plan_chosen:
        expect(page.get_by_role("heading", level=1)).to_have_text("Your account is ready")
        page.get_by_role("button", name="Continue to payment").click()


def pay(page, card: str, *, agree: bool = True) -> None:
    """Pay on the sandbox's Checkout page; tick the terms box when the site asks for consent
    (development does), unless `agree=False`."""
    terms = page.get_by_role("checkbox", name=re.compile("I agree to the LLMGen Terms"))
    if agree and terms.count():
        terms.check()
    page.get_by_label("Card number").fill(card)
    page.get_by_label("Expiry").fill("12 / 34")
    page.get_by_label("CVC").fill("123")
    page.get_by_role("button", name="Pay").click()


def wait_for(predicate, timeout: float = 15.0) -> None:
    """Webhooks arrive in the background, as from Stripe: poll the page's source of truth."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.2)


def open_account_until(page, url: str, text: str) -> None:
    def shows() -> bool:
        page.goto(f"{url}/account")
        return text in page.content()

    wait_for(shows)


@pytest.mark.in_process
def test_choose_sign_up_pay_then_manage_in_the_portal(live_server, page):
    url = live_server.url
    page.goto(f"{url}/pricing")
    page.get_by_role("link", name="Yearly").click()
    page.locator("#plan-professional").get_by_role(
        "link", name=re.compile("Choose Professional")
    ).click()
    expect(page.locator(".plan-summary")).to_contain_text("Professional, yearly")
    sign_up(page, "buyer@example.com")

    # Straight on to the (sandbox) hosted checkout page, without picking the plan again.
    expect(page.get_by_text("Sandbox — no real money")).to_be_visible()
    expect(page.locator("body")).to_contain_text("$129.90")
    pay(page, "4242 4242 4242 4242")
    expect(page.get_by_role("heading", level=1)).to_contain_text("You're on Professional")

    open_account_until(page, url, "3,000")
    expect(page.get_by_test_id("plan-name")).to_have_text("Professional")
    expect(page.get_by_test_id("credit-balance")).to_have_text("3,000")
    expect(page.get_by_test_id("period-end")).to_have_text(re.compile(r"\d{1,2} \w{3} \d{4}"))

    # The portal: switch to Business.
    page.get_by_role("button", name="Manage billing").click()
    expect(page.get_by_role("heading", name="Manage your subscription")).to_be_visible()
    select = page.get_by_label("New plan")
    business = next(
        text
        for text in select.locator("option").all_inner_texts()
        if "Business" in text and "early" in text
    )
    select.select_option(label=business)
    page.get_by_role("button", name="Switch plan").click()
    open_account_until(page, url, ">Business<")
    expect(page.get_by_test_id("plan-name")).to_have_text("Business")

    # Cancel at period end, with a reason: the account says when the plan ends.
    page.get_by_role("button", name="Manage billing").click()
    page.get_by_label(re.compile("too expensive", re.I)).check()
    page.get_by_role("button", name="Cancel at period end").click()
    open_account_until(page, url, "Your plan is set to end on")
    expect(page.get_by_test_id("ends-notice")).to_contain_text(re.compile(r"\d{1,2} \w{3} \d{4}"))

    # Past the period end, the plan is gone.
    client = live_server.app.test_client()
    assert client.post("/sandbox/control/advance", json={"days": 400}).status_code == 200
    open_account_until(page, url, "You have no active plan")
    assert sql(live_server.app, "select status from subscriptions") == [("canceled",)]


def test_declined_card_shows_the_decline_and_no_plan(live_server, page):
    url = live_server.url
    page.goto(f"{url}/signup?plan=starter&cycle=monthly")
    sign_up(page, unique_email("declined"))
    pay(page, "4000 0000 0000 0002")
    expect(page.get_by_role("alert")).to_contain_text(re.compile("declined", re.I))
    page.goto(f"{url}/account")
    expect(page.get_by_test_id("no-plan")).to_be_visible()


def test_cancel_link_leads_to_the_cancel_page(live_server, page):
    url = live_server.url
    page.goto(f"{url}/signup?plan=agency&cycle=monthly")
    sign_up(page, unique_email("changed-mind"))
    page.get_by_role("link", name=re.compile("Back|Cancel|Return", re.I)).first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("nothing was charged")
    page.get_by_role("link", name="Back to pricing").last.click()
    expect(page.locator("#plan-agency")).to_have_class(re.compile("is-selected"))


@pytest.mark.in_process
def test_a_member_following_a_plan_link_confirms_before_checkout(live_server, page):
    url = live_server.url
    page.goto(f"{url}/signup")
    sign_up(page, "member-first@example.com", plan_chosen=False)
    expect(page).to_have_url(f"{url}/account")
    # A link naming a plan (from a newsletter, or another site) only asks; nothing starts yet.
    page.goto(f"{url}/signup?plan=professional&cycle=yearly")
    expect(page.get_by_role("heading", level=1)).to_have_text("Continue to checkout")
    expect(page.locator(".plan-summary")).to_contain_text("Professional, yearly")
    assert sql(live_server.app, "select count(*) from checkout_sessions") == [(0,)]
    page.get_by_role("button", name="Continue to checkout").click()
    pay(page, "4242 4242 4242 4242")
    expect(page.get_by_role("heading", level=1)).to_contain_text("You're on Professional")
