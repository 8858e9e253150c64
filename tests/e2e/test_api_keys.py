"""The API-key panel in Chromium at phone width: create a read-only key with an expiry, use it,
widen it to full access, revoke it; the page never scrolls sideways."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import create_user
from tests.e2e.test_copy_editor import PASSWORD, log_in

# It reads and changes the app in process: not against a --base-url site.
pytestmark = pytest.mark.in_process

SHOTS = Path(os.environ.get("SHOTS_DIR", "/tmp/shots-api-keys"))


def test_api_keys_on_the_account_page_at_390_px(new_context, live_server):
    base = live_server.url
    create_user(live_server.app, email="kim@example.com", password=PASSWORD)
    context = new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    log_in(page, base, "kim@example.com")

    panel = page.locator("#api-keys")
    panel.get_by_label("Key name").fill("Wallboard")
    panel.get_by_label("Description (optional)").fill("The office screen")
    panel.get_by_label(re.compile("Read-only: plan")).check()
    panel.get_by_label("Expires").select_option(label="In 30 days")
    panel.get_by_role("button", name="Create API key").click()
    secret = page.get_by_test_id("new-api-key").input_value()
    assert secret.startswith("llmgen_")
    expect(page.get_by_text(re.compile("Read-only: it can read"))).to_be_visible()

    # The API on the same database, as another worker would answer it.
    api, key = live_server.app.test_client(), {"Authorization": f"Bearer {secret}"}
    assert api.get("/api/v1/credits/balance/api", headers=key).status_code == 200
    refused = api.post("/api/v1/subscriptions/portal/api", headers=key)
    assert refused.get_json()["error"]["code"] == "insufficient_scope"

    page.get_by_role("link", name="Done, back to my account").click()
    row = page.get_by_test_id("api-key-row")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Read-only")
    expect(row).to_contain_text("The office screen")
    expect(row.get_by_test_id("api-key-last-used")).to_contain_text("UTC")
    expect(row.get_by_test_id("api-key-expires")).to_contain_text("UTC")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    SHOTS.mkdir(parents=True, exist_ok=True)
    panel.screenshot(path=str(SHOTS / "api-keys-390.png"))

    row.get_by_text("Edit the key Wallboard").click()
    row.get_by_label(re.compile("Full: read")).check()
    row.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("api-key-row")).to_contain_text("Full access")
    widened = api.post("/api/v1/subscriptions/portal/api", headers=key)
    assert widened.get_json()["error"]["code"] == "no_billing_account"  # past the scope check

    page.get_by_role("button", name="Revoke the key Wallboard").click()
    expect(page.get_by_text("No API keys yet.")).to_be_visible()
    assert api.get("/api/v1/credits/balance/api", headers=key).status_code == 401
    context.close()
