"""A card-less free trial end to end in Chromium: the pricing card and checkout say "14-day free
trial", Checkout starts it with no card ("$0.00 due today"), the account page shows "Trial ends
DATE" and the trial allowance; then with the test clock either a card added in the portal
converts it (active, first invoice paid, the month's credits added) or, with no card, it ends
cancelled with the allowance and nothing more."""

import re
from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect

from tests.conftest import sql
from tests.e2e.conftest import shoot
from tests.e2e.test_subscribe import open_account_until, pay, sign_up
from webapp.stripe_gateway import get_gateway
from webapp.templating import format_date

# It reads and changes the app in process: not against a --base-url site.
pytestmark = pytest.mark.in_process


@pytest.fixture
def config_overrides():
    return {
        "CHECKOUT_OVERRIDES": {
            "CHECKOUT_FREE_TRIALS": "true",
            "CHECKOUT_TRIALS_WITHOUT_CARD": "true",
        }
    }


def start_card_less_trial(live_server, page, email: str) -> str:
    """From the pricing page to a started trial; the trial's end as the account page says it."""
    url = live_server.url
    page.goto(f"{url}/pricing")
    card = page.locator("#plan-starter")
    expect(card.get_by_test_id("trial-offer")).to_have_text("14-day free trial")
    shoot(page, "pricing")
    card.get_by_role("link", name=re.compile("Start with Starter")).click()
    sign_up(page, email, plan_chosen=False)
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account is ready")
    expect(page.get_by_test_id("trial-offer")).to_contain_text("14-day free trial")
    shoot(page, "signup-done")
    page.get_by_role("button", name="Continue to payment").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Start your 14-day free trial")
    expect(page.get_by_test_id("trial-due-today")).to_have_text("$0.00 due today")
    expect(page.get_by_test_id("trial-then")).to_contain_text("$4.99 / month")
    shoot(page, "checkout")
    page.get_by_role("button", name="Start trial", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("free trial has started")
    open_account_until(page, url, "Trial ends")
    expect(page.get_by_test_id("plan-status")).to_have_text("Free trial")
    expect(page.get_by_test_id("credit-balance")).to_have_text("100")
    shoot(page, "account-trialing")
    return page.get_by_test_id("trial-end").inner_text()


def trial_end_of(app, email: str) -> datetime:
    (row,) = sql(
        app,
        "select s.trial_end from subscriptions s join users u on u.id = s.user_id "
        "where u.email = :email",
        email=email,
    )
    value = row[0]
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def test_a_card_added_in_the_portal_converts_the_trial(live_server, page):
    app, url = live_server.app, live_server.url
    shown = start_card_less_trial(live_server, page, "trial-card@example.com")
    end = trial_end_of(app, "trial-card@example.com").replace(tzinfo=UTC)
    assert shown == format_date(end)

    # The real Stripe way: the portal's payment-method update.
    page.get_by_role("button", name="Manage billing").click()
    expect(page.get_by_text("Sandbox — no real money")).to_be_visible()
    page.get_by_label("Card number").fill("4242 4242 4242 4242")
    page.get_by_label("Expiry").fill("12 / 34")
    page.get_by_label("CVC").fill("123")
    page.get_by_role("button", name="Update card").click()
    expect(page.get_by_text("Card ending 4242 saved.")).to_be_visible()

    client = app.test_client()
    assert client.post("/sandbox/control/advance", json={"days": 14.01}).status_code == 200
    open_account_until(page, url, "1,100")
    expect(page.get_by_test_id("plan-status")).to_have_text("Active")
    expect(page.locator("body")).not_to_contain_text("Trial ends")
    shoot(page, "account-converted")
    (customer,) = sql(
        app, "select stripe_customer_id from users where email = 'trial-card@example.com'"
    )
    with app.app_context():
        invoices = sorted(get_gateway().list_invoices(customer[0]), key=lambda i: i.created)
    assert [(i.billing_reason, i.status, i.amount_paid) for i in invoices] == [
        ("subscription_create", "paid", 0),
        ("subscription_cycle", "paid", 499),
    ]


def test_a_trial_without_a_card_ends_cancelled(live_server, page):
    app, url = live_server.app, live_server.url
    start_card_less_trial(live_server, page, "trial-nocard@example.com")
    client = app.test_client()
    assert client.post("/sandbox/control/advance", json={"days": 15}).status_code == 200
    open_account_until(page, url, "Trial ended on")
    expect(page.get_by_test_id("no-plan")).to_be_visible()
    expect(page.get_by_test_id("trial-ended")).to_contain_text("canceled")
    expect(page.get_by_test_id("credit-balance")).to_have_text("100")
    shoot(page, "account-trial-ended")
    # No second trial: the pricing page offers none, and Checkout asks for payment at once.
    page.goto(f"{url}/pricing")
    expect(page.get_by_test_id("trial-offer")).to_have_count(0)
    page.locator("#plan-starter").get_by_role("button", name=re.compile("Start with")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Pay for your subscription")
    pay(page, "4242 4242 4242 4242")
    expect(page.get_by_role("heading", level=1)).to_contain_text("You're on Starter")
    open_account_until(page, url, "1,100")
