"""The low-balance banner in Chromium: a member on Starter warns themselves at 25 % of the plan's
monthly credits, spends through the usage endpoint (over HTTP, as our generation service does),
and sees the banner on the site's pages, readable at 1280 and 390 px, linking to /pricing."""

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import sql
from tests.e2e.test_credit_history import TOKEN, service_post
from tests.e2e.test_subscribe import open_account_until, pay, sign_up

# It reads and changes the app in process: not against a --base-url site.
pytestmark = pytest.mark.in_process

SHOTS = Path(os.environ.get("SHOTS_DIR", "/tmp/shots-lowbal"))


@pytest.fixture
def config_overrides() -> dict[str, str]:
    return {"CREDITS_SERVICE_TOKEN": TOKEN}


def test_the_low_balance_banner_at_desktop_and_phone_width(live_server, page):
    app, url = live_server.app, live_server.url
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{url}/pricing")
    page.locator("#plan-starter .cta a").click()
    sign_up(page, "low@example.com")
    pay(page, "4242 4242 4242 4242")
    open_account_until(page, url, "1,000")
    banner = page.get_by_test_id("low-balance-banner")
    expect(banner).to_have_count(0)
    [(user_id,)] = sql(app, "select id from users where email = 'low@example.com'")

    page.goto(f"{url}/account/notifications")
    page.get_by_label("Warn me when my balance falls below").fill("25")
    page.get_by_label("% of my plan's monthly credits").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Your mail preferences are saved.")).to_be_visible()
    expect(page.get_by_text("Your warning now starts below 250 credits.")).to_be_visible()
    page.screenshot(path=str(SHOTS / "preferences-1280.png"), full_page=True)

    body = {"userId": user_id, "amount": 800, "description": "big job", "idempotencyKey": "e2e-1"}
    assert service_post(url, "/credits/usage", body)["balance"] == 200
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 800})
        for path in ("/account", "/pricing"):
            page.goto(f"{url}{path}")
            expect(banner).to_be_visible()
            expect(banner).to_contain_text("Your credits are running low.")
            box = banner.bounding_box()
            assert box is not None and box["width"] <= width  # no sideways scrolling
            scroll = page.evaluate("document.documentElement.scrollWidth")
            assert scroll <= width, (path, width, scroll)
        page.goto(f"{url}/account")
        page.screenshot(path=str(SHOTS / f"banner-account-{width}.png"))
    banner.get_by_role("link", name="Buy credits or upgrade").click()
    expect(page).to_have_url(f"{url}/pricing")

    reversed_ = service_post(url, "/credits/usage/reverse", {"idempotencyKey": "e2e-1"})
    assert reversed_["balance"] == 1000
    page.goto(f"{url}/account")
    expect(page.get_by_test_id("credit-balance")).to_have_text("1,000")
    expect(banner).to_have_count(0)
    mails = sql(app, "select kind from outgoing_mail where kind = 'credits_low'")
    assert len(mails) == 1
