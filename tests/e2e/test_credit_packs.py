"""Credit packs in Chromium: a new member with no plan buys a pack from the pricing page, sees
the credits on the success and account pages and the purchase in the history, spends through
the usage endpoint (as our generation service does, over HTTP), and finds the spending in the
history filtered by `usage`. Screenshots at 1280 px and 390 px."""

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import sql
from tests.e2e.test_credit_history import TOKEN, service_post
from tests.e2e.test_subscribe import pay, sign_up

# It reads and changes the app in process: not against a --base-url site.
pytestmark = pytest.mark.in_process

SHOTS = Path(os.environ.get("SHOTS_DIR", "/tmp/shots-packs"))


@pytest.fixture
def config_overrides() -> dict[str, str]:
    return {"CREDITS_SERVICE_TOKEN": TOKEN}


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})


def test_buy_a_pack_without_a_plan_then_spend_it(live_server, page):
    app, url = live_server.app, live_server.url
    page.goto(f"{url}/signup")
    sign_up(page, "packs@example.com", plan_chosen=False)
    page.goto(f"{url}/pricing")
    packs = page.get_by_test_id("buy-credits")
    expect(packs).to_contain_text("Pro Pack")
    shot(page, "pricing")
    packs.get_by_role("button", name="Buy Pro Pack: 500 credits for $19.99").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Pay once")
    expect(page.locator("body")).to_contain_text("$19.99")
    pay(page, "4242 4242 4242 4242")
    expect(page.get_by_test_id("pack-credits-added")).to_have_text("500 credits added")
    shot(page, "success")
    assert sql(app, "select count(*) from subscriptions") == [(0,)]

    page.goto(f"{url}/account")
    expect(page.get_by_test_id("credit-balance")).to_have_text("500")
    expect(page.locator(".ledger-table")).to_contain_text("Pro Pack")
    expect(page.get_by_test_id("buy-credits")).to_be_visible()
    shot(page, "account")

    [(user_id,)] = sql(app, "select id from users where email = 'packs@example.com'")
    for n in range(3):
        body = {
            "userId": user_id,
            "amount": 25,
            "description": f"Generation #{n}",
            "idempotencyKey": f"pack-e2e-{n}",
        }
        assert service_post(url, "/credits/usage", body)["balance"] == 500 - 25 * (n + 1)

    page.goto(f"{url}/account")
    expect(page.get_by_test_id("credit-balance")).to_have_text("425")
    page.get_by_test_id("all-credits").click()
    page.get_by_test_id("filter-usage").click()
    rows = page.get_by_test_id("credit-row")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("Generation #2")
    expect(rows.first).to_contain_text("-25")
    shot(page, "history-usage")
    page.get_by_test_id("filter-purchase").click()
    expect(page.get_by_test_id("credit-row")).to_have_count(1)
    expect(page.get_by_test_id("credit-row")).to_contain_text("Pro Pack")
