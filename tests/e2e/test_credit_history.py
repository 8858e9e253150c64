"""The credit history in Chromium: a plan bought through Checkout, generations spent through the
usage endpoint (over HTTP, as our generation service calls it), one reversed; the account page
links to the full history, which filters by type and pages, readable at phone width."""

import json
import os
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import sql
from tests.e2e.test_subscribe import open_account_until, pay, sign_up

# It reads and changes the app in process: not against a --base-url site.
pytestmark = pytest.mark.in_process

SHOTS = Path(os.environ.get("SHOTS_DIR", "/tmp/shots-credits"))
TOKEN = "service-token-for-the-browser-test-0123456"


@pytest.fixture
def config_overrides() -> dict[str, str]:
    return {"CREDITS_SERVICE_TOKEN": TOKEN}


def service_post(url: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        f"{url}/api/v1{path}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_spend_and_read_the_credit_history(live_server, page):
    app, url = live_server.app, live_server.url
    page.goto(f"{url}/pricing")
    page.locator("#plan-starter .cta a").click()
    sign_up(page, "credits@example.com")
    pay(page, "4242 4242 4242 4242")
    expect(page.get_by_role("heading", level=1)).to_contain_text("You're on Starter")
    open_account_until(page, url, "1,000")
    [(user_id,)] = sql(app, "select id from users where email = 'credits@example.com'")

    for n in range(24):
        body = {
            "userId": user_id,
            "amount": 10,
            "description": f"llms.txt generation #{n}",
            "siteId": "example.com" if n % 2 else None,
            "idempotencyKey": f"e2e-{n}",
        }
        assert service_post(url, "/credits/usage", body)["balance"] == 1000 - 10 * (n + 1)
    assert (
        service_post(url, "/credits/usage/reverse", {"idempotencyKey": "e2e-23"})["balance"] == 770
    )

    page.goto(f"{url}/account")
    expect(page.get_by_test_id("credit-balance")).to_have_text("770")
    page.get_by_test_id("all-credits").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Credit history")
    expect(page.get_by_test_id("credit-row")).to_have_count(20)
    expect(page.get_by_text("Page 1 of 2 (26 entries)")).to_be_visible()

    page.get_by_test_id("filter-usage").click()
    rows = page.get_by_test_id("credit-row")
    expect(rows).to_have_count(20)
    expect(rows.first).to_contain_text("Reversed: llms.txt generation #23")
    expect(rows.first).to_contain_text("+10")
    expect(rows.nth(1)).to_contain_text("-10")
    page.get_by_test_id("older-credits").click()
    expect(page.get_by_test_id("credit-row")).to_have_count(5)
    expect(page.get_by_test_id("credit-row").last).to_contain_text("llms.txt generation #0")

    page.get_by_test_id("filter-purchase").click()
    expect(page.get_by_test_id("credit-row")).to_have_count(1)
    expect(page.get_by_test_id("credit-row")).to_contain_text("Starter plan: monthly credits")

    page.get_by_test_id("filter-all").click()
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width, height in ((1280, 800), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(SHOTS / f"credit-history-{width}.png"), full_page=True)
        scroll = page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width, f"the credit history scrolls sideways at {width}px"
    page.goto(f"{url}/account")
    card = page.locator(".card", has=page.get_by_test_id("all-credits"))
    card.screenshot(path=str(SHOTS / "account-credits-390.png"))
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
