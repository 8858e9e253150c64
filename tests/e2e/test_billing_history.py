"""The billing history in Chromium: a discounted first invoice and a full-price renewal on the
account page, newest first, readable at phone width without scrolling sideways."""

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.test_subscribe import open_account_until, pay, sign_up

# It reads and changes the app in process: not against a --base-url site.
pytestmark = pytest.mark.in_process

SHOTS = Path(os.environ.get("SHOTS_DIR", "/tmp/shots-history"))


def test_billing_history_on_the_account_page(live_server, page):
    app, url = live_server.app, live_server.url
    runner = app.test_cli_runner()
    coupon = runner.invoke(args=["stripe", "create-coupon", "--percent-off", "20"])
    assert coupon.exit_code == 0, coupon.output
    code = ["stripe", "create-promotion-code", "--coupon", coupon.output.strip()]
    assert runner.invoke(args=[*code, "--code", "HISTORY20"]).exit_code == 0

    page.goto(f"{url}/pricing")
    page.locator("#plan-professional").get_by_role(
        "link", name=re.compile("Choose Professional")
    ).click()
    sign_up(page, "history@example.com")
    page.get_by_text("Add promotion code").click()
    page.get_by_label("Promotion code").fill("HISTORY20")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_test_id("amount-total")).to_have_text("$10.39")
    pay(page, "4242 4242 4242 4242")
    expect(page.get_by_role("heading", level=1)).to_contain_text("You're on Professional")
    assert app.test_client().post("/sandbox/control/advance", json={"days": 32}).status_code == 200
    open_account_until(page, url, "6,000")

    history = page.get_by_test_id("billing-history")
    rows = history.get_by_test_id("invoice-row")
    expect(rows).to_have_count(2)
    # Newest first: the renewal at full price, then the first invoice with its 20% off.
    expect(rows.nth(0).get_by_test_id("invoice-amount")).to_have_text("$12.99")
    expect(rows.nth(0).get_by_test_id("invoice-discount")).to_have_text("$0.00")
    expect(rows.nth(1).get_by_test_id("invoice-amount")).to_have_text("$10.39")
    expect(rows.nth(1).get_by_test_id("invoice-discount")).to_have_text("-$2.60")
    expect(rows.nth(1).get_by_test_id("invoice-tax")).to_have_text("$0.00")
    expect(rows.nth(1).get_by_test_id("invoice-status")).to_have_text("Paid")
    expect(rows.nth(1).get_by_test_id("invoice-hosted")).to_have_attribute("href", re.compile("/"))

    SHOTS.mkdir(parents=True, exist_ok=True)
    for width, height in ((1280, 800), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        history.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / f"account-{width}.png"), full_page=True)
        history.screenshot(path=str(SHOTS / f"billing-history-{width}.png"))
        scroll = page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width, f"the account page scrolls sideways at {width}px"
        wrap = history.locator(".table-wrap")
        assert wrap.evaluate("e => e.scrollWidth <= e.clientWidth"), f"table scrolls at {width}px"

    page.goto(f"{url}/account/invoices")
    expect(page.get_by_test_id("invoice-row")).to_have_count(2)
    page.screenshot(path=str(SHOTS / "invoices-390.png"), full_page=True)
