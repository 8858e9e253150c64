"""A promotion code end to end in Chromium: the code made with `flask stripe`, typed on the
hosted Checkout page, 20% off the first invoice only, and the plan's credits unchanged."""

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import sql
from tests.e2e.test_subscribe import open_account_until, pay, sign_up
from webapp.stripe_gateway import get_gateway

# It reads and changes the app in process: not against a --base-url site.
pytestmark = pytest.mark.in_process

SHOTS = Path(os.environ.get("SHOTS_DIR", "/tmp/shots-promo"))


def test_twenty_percent_off_the_first_invoice_and_credits_unchanged(live_server, page):
    app, url = live_server.app, live_server.url
    runner = app.test_cli_runner()
    coupon = runner.invoke(
        args=["stripe", "create-coupon", "--percent-off", "20", "--name", "Spring sale"]
    )
    assert coupon.exit_code == 0, coupon.output
    code = runner.invoke(
        args=[
            "stripe",
            "create-promotion-code",
            "--coupon",
            coupon.output.strip(),
            "--code",
            "SPRING20",
        ]
    )
    assert code.exit_code == 0, code.output

    page.goto(f"{url}/pricing")
    page.locator("#plan-professional").get_by_role(
        "link", name=re.compile("Choose Professional")
    ).click()
    sign_up(page, "promo@example.com")
    expect(page.get_by_text("Sandbox — no real money")).to_be_visible()

    # A code that does not exist is refused in Stripe's place; the real one takes 20% off.
    page.get_by_text("Add promotion code").click()
    page.get_by_label("Promotion code").fill("NOPE")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_text("This code is invalid.")).to_be_visible()
    page.get_by_label("Promotion code").fill("spring20")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_test_id("amount-total")).to_have_text("$10.39")  # $12.99 - $2.60
    expect(page.locator("body")).to_contain_text("SPRING20")
    expect(page.locator("body")).to_contain_text("20% off, the first payment")
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width, height in ((1280, 800), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(SHOTS / f"checkout-code-{width}.png"), full_page=True)
        scroll = page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width, f"the page scrolls sideways at {width}px"
    page.set_viewport_size({"width": 1280, "height": 800})

    pay(page, "4242 4242 4242 4242")
    expect(page.get_by_role("heading", level=1)).to_contain_text("You're on Professional")
    open_account_until(page, url, "3,000")
    expect(page.get_by_test_id("credit-balance")).to_have_text("3,000")

    # A month on: the second invoice is the full price, and one more month of credits.
    client = app.test_client()
    assert client.post("/sandbox/control/advance", json={"days": 32}).status_code == 200
    open_account_until(page, url, "6,000")
    expect(page.get_by_test_id("credit-balance")).to_have_text("6,000")
    (customer,) = sql(app, "select stripe_customer_id from users where email = 'promo@example.com'")
    with app.app_context():
        invoices = get_gateway().list_invoices(customer[0])
    # (The 6,000 credits above waited for the renewal's invoice.paid webhook.)
    paid = sorted((invoice.created, invoice.amount_paid) for invoice in invoices)
    assert [amount for _created, amount in paid] == [1039, 1299]
