"""Deleting an account in Chromium: subscribe, delete, then check Stripe (the sandbox, through
the real SDK) and the row. Screenshots of the delete page go to SHOTS_DIR (default
/tmp/shots-del) at 1280 and 390 px."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import sql
from tests.e2e.test_subscribe import open_account_until, pay, sign_up, wait_for
from webapp.stripe_gateway import get_gateway

# It reads and changes the app in process: not against a --base-url site.
pytestmark = pytest.mark.in_process

SHOTS_DIR = Path(os.environ.get("SHOTS_DIR", "/tmp/shots-del"))
EMAIL = "leaving@example.com"


def test_delete_the_account_in_the_browser(live_server, page):
    url, app = live_server.url, live_server.app
    page.goto(f"{url}/signup?plan=professional&cycle=monthly")
    sign_up(page, EMAIL)
    pay(page, "4242 4242 4242 4242")
    expect(page.get_by_role("heading", level=1)).to_contain_text("You're on Professional")
    open_account_until(page, url, "3,000")
    [(user_id, customer_id)] = sql(app, "select id, stripe_customer_id from users")
    [(subscription_id,)] = sql(app, "select stripe_subscription_id from subscriptions")

    page.get_by_role("link", name="Delete account").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Delete your account")
    expect(page.get_by_test_id("plan-ends-now")).to_contain_text("cancelled at Stripe at once")
    expect(page.get_by_test_id("plan-ends-now")).to_contain_text("not refunded")
    SHOTS_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS_DIR / "delete-1280.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(SHOTS_DIR / "delete-390.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})

    # The wrong password changes nothing.
    page.get_by_label("Your current password").fill("not my password at all")
    page.get_by_label(re.compile("cannot be undone")).check()
    page.get_by_role("button", name="Delete my account").click()
    expect(page.locator("#password-error")).to_have_text("That is not your current password.")
    assert sql(app, "select deleted_at from users") == [(None,)]

    page.get_by_label("Your current password").fill("a long enough password")
    page.get_by_label(re.compile("cannot be undone")).check()
    page.get_by_role("button", name="Delete my account").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account is deleted")
    page.screenshot(path=str(SHOTS_DIR / "deleted-1280.png"), full_page=True)

    # At Stripe, through the SDK: canceled now; the customer deleted.
    with app.app_context():
        client = get_gateway().client
        assert client.v1.subscriptions.retrieve(subscription_id).status == "canceled"
        assert getattr(client.v1.customers.retrieve(customer_id), "deleted", False) is True
    # Here, once the webhooks (in the background, as from Stripe) have been processed too.
    wait_for(
        lambda: sql(app, "select count(*) from webhook_events where type = 'customer.deleted'")
        == [(1,)]
    )
    assert sql(app, "select status from subscriptions") == [("canceled",)]
    assert sql(app, "select email, deleted_at is not null, stripe_customer_id from users") == [
        (f"deleted-{user_id}@deleted.invalid", True, None)
    ]
    assert sql(app, "select count(*) from outgoing_mail where to_address = :e", e=EMAIL) == [(1,)]

    # Logged out; the old credentials get the ordinary message.
    page.goto(f"{url}/account")
    expect(page).to_have_url(re.compile(r"/login"))
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill("a long enough password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("Incorrect email or password.")).to_be_visible()
