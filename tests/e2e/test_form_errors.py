"""Failed forms in Chromium: the error summary takes the focus and names each field in error,
and a form sent after its page was open too long (a stale CSRF token) can be sent again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import create_user
from tests.e2e.test_copy_editor import PASSWORD, log_in

# They make accounts and read the database of the site they test: in this process only.
pytestmark = pytest.mark.in_process

SHOTS = Path(os.environ.get("SHOTS_DIR", "/tmp/phones-shots"))
NEW_TAGLINE = "Kept while another field fails."


def focused_testid(page: Page) -> str | None:
    return page.evaluate("document.activeElement && document.activeElement.dataset.testid")


def shoot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width, height in ((1280, 800), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"))


def test_an_error_deep_in_the_copy_editor_is_summarised_and_focused(browser, live_server):
    base = live_server.url
    create_user(live_server.app, email="mia@example.com", role="marketing")
    page = browser.new_context().new_page()
    log_in(page, base, "mia@example.com")
    page.goto(f"{base}/admin/plans")

    # The last plan's last required field, thousands of pixels down, and a change further up.
    page.locator("#professional-tagline").fill(NEW_TAGLINE)
    page.locator("#agency-cta_label").fill("")
    page.get_by_role("button", name="Save draft").click()

    summary = page.get_by_test_id("error-summary")
    expect(summary).to_be_visible()
    expect(summary).to_contain_text("Agency · Call-to-action label: Required.")
    assert focused_testid(page) == "error-summary"
    assert page.evaluate("window.scrollY") < 800, "the summary is in view, at the top"
    expect(page.locator("#professional-tagline")).to_have_value(NEW_TAGLINE)  # input kept
    shoot(page, "editor-error-summary")

    summary.get_by_role("link", name="Agency · Call-to-action label: Required.").click()
    assert page.evaluate("document.activeElement.id") == "agency-cta_label"


def test_a_failed_log_in_focuses_its_summary(live_server, page):
    create_user(live_server.app, email="ada@example.com", password=PASSWORD)
    page.goto(f"{live_server.url}/login")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("error-summary")).to_contain_text("Password: Enter your password.")
    assert focused_testid(page) == "error-summary"
    expect(page.get_by_label("Email")).to_have_value("ada@example.com")


def test_a_log_in_form_open_too_long_keeps_the_email_and_asks_for_the_password(
    live_server, context, page
):
    create_user(live_server.app, email="ada@example.com", password=PASSWORD)
    page.goto(f"{live_server.url}/login")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    context.clear_cookies()  # the session, and with it the form's token, is gone
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("This page was open too long")
    expect(page.get_by_text("CSRF")).to_have_count(0)
    retry = page.get_by_test_id("csrf-retry")
    assert retry.locator("input[name=email]").input_value() == "ada@example.com"
    expect(retry.get_by_label("Password")).to_have_value("")  # a password is never echoed
    shoot(page, "csrf-retry")
    retry.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Send again").click()
    expect(page).to_have_url(f"{live_server.url}/account")


def test_the_copy_editor_sent_with_a_stale_token_saves_on_retry(browser, live_server):
    base = live_server.url
    create_user(live_server.app, email="mia@example.com", role="marketing")
    page = browser.new_context().new_page()
    log_in(page, base, "mia@example.com")
    page.goto(f"{base}/admin/plans")
    page.locator("#professional-tagline").fill(NEW_TAGLINE)
    # A token from an older session, as after logging out and in again in another tab.
    page.locator("form.form input[name=csrf_token]").last.evaluate("e => e.value = 'stale'")
    page.get_by_role("button", name="Save draft").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("This page was open too long")
    page.get_by_role("button", name="Send again").click()
    expect(page).to_have_url(f"{base}/admin/plans")
    expect(page.get_by_text("Draft saved.")).to_be_visible()
    expect(page.locator("#professional-tagline")).to_have_value(NEW_TAGLINE)


def test_the_editor_warns_when_copy_contradicts_the_catalog(browser, live_server):
    base = live_server.url
    create_user(live_server.app, email="mia@example.com", role="marketing")
    page = browser.new_context().new_page()
    log_in(page, base, "mia@example.com")
    page.goto(f"{base}/admin/plans")
    page.locator("#starter-tagline").fill("5,000 credits for only $3.99")
    page.get_by_role("button", name="Save draft").click()
    warnings = page.get_by_test_id("copy-warnings")
    expect(warnings).to_contain_text("“5,000 credits”, but the catalog says 1,000 credits a month")
    expect(warnings).to_contain_text("“$3.99”")
    expect(page.get_by_text("Draft saved.")).to_be_visible()  # a warning, not a refusal
    warnings.scroll_into_view_if_needed()
    shoot(page, "editor-copy-warnings")
