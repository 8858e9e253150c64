"""Marketing edits plan copy in Chromium: edit, preview, publish, revert; others are kept out."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import create_user

# It reads and changes the app in process: not against a --base-url site.
pytestmark = [pytest.mark.e2e, pytest.mark.in_process]

PASSWORD = "correct horse battery"
OLD_TAGLINE = "For individuals shipping real work."
NEW_TAGLINE = "Built for people who ship every day."
NEW_FEATURE = "Round-the-clock priority support"


def log_in(page: Page, base_url: str, email: str) -> None:
    page.goto(f"{base_url}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base_url}/account")


def test_marketing_edits_previews_publishes_and_reverts(new_context, live_server):
    base = live_server.url
    create_user(live_server.app, email="mia@example.com", role="marketing")
    editor_context, public_context = new_context(), new_context()
    editor, visitor = editor_context.new_page(), public_context.new_page()
    dialogs: list[str] = []
    for page in (editor, visitor):
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    log_in(editor, base, "mia@example.com")
    editor.get_by_role("link", name="Edit copy").click()
    expect(editor).to_have_url(f"{base}/admin/plans")
    expect(editor.locator("#edit-professional")).to_contain_text("$12.99")  # read-only facts

    editor.locator("#professional-tagline").fill(NEW_TAGLINE)
    features = editor.locator("#professional-features")
    features.fill(features.input_value().replace("Priority support", NEW_FEATURE))
    editor.get_by_role("button", name="Save and preview").click()

    expect(editor).to_have_url(f"{base}/admin/plans/preview")
    expect(editor.locator(".banner-preview")).to_contain_text("Preview")
    card = editor.locator("#plan-professional")
    expect(card).to_contain_text(NEW_TAGLINE)
    expect(card).to_contain_text(NEW_FEATURE)
    expect(card).to_contain_text("$12.99")

    visitor.goto(f"{base}/pricing")
    expect(visitor.locator("#plan-professional")).to_contain_text(OLD_TAGLINE)
    expect(visitor.locator("#plan-professional")).not_to_contain_text(NEW_FEATURE)
    expect(visitor.locator(".banner-preview")).to_have_count(0)
    visitor.goto(f"{base}/admin/plans/preview")  # the preview is for editors only
    expect(visitor).to_have_url(f"{base}/login?next=%2Fadmin%2Fplans%2Fpreview")

    editor.get_by_role("button", name="Publish this draft").click()
    expect(editor).to_have_url(f"{base}/admin/plans/history")
    expect(editor.get_by_text("Published revision 2")).to_be_visible()
    expect(editor.locator("#revision-2")).to_contain_text("mia@example.com")
    expect(editor.locator("#revision-2")).to_contain_text(NEW_TAGLINE)

    visitor.goto(f"{base}/pricing")
    # The browser keeps the public page for max-age (webapp/public_pages.py); a reload asks
    # again with its ETag, which the publish moved at once.
    visitor.reload()
    expect(visitor.locator("#plan-professional")).to_contain_text(NEW_TAGLINE)
    expect(visitor.locator("#plan-professional")).to_contain_text(NEW_FEATURE)

    editor.get_by_role("button", name="Revert to 1").click()
    expect(editor.get_by_text("Reverted to revision 1: published as revision 3")).to_be_visible()
    visitor.goto(f"{base}/pricing")
    visitor.reload()
    expect(visitor.locator("#plan-professional")).to_contain_text(OLD_TAGLINE)
    expect(visitor.locator("#plan-professional")).to_contain_text("Priority support")
    expect(visitor.locator("#plan-professional")).not_to_contain_text(NEW_FEATURE)

    assert dialogs == []
    editor_context.close()
    public_context.close()


def test_normal_user_gets_403(new_context, live_server):
    create_user(live_server.app, email="user@example.com", role="user")
    context = new_context()
    page = context.new_page()
    log_in(page, live_server.url, "user@example.com")
    expect(page.get_by_role("link", name="Edit copy")).to_have_count(0)
    response = page.goto(f"{live_server.url}/admin/plans")
    assert response is not None and response.status == 403
    context.close()


def test_script_typed_into_copy_shows_as_text_and_never_runs(new_context, live_server):
    base = live_server.url
    create_user(live_server.app, email="mia@example.com", role="marketing")
    context = new_context()
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    log_in(page, base, "mia@example.com")
    page.goto(f"{base}/admin/plans")
    page.locator("#professional-tagline").fill("<script>alert('tagline')</script>")
    page.locator("#professional-badge").fill('<img src=x onerror="alert(1)">')
    page.locator("#professional-description").fill("<script>alert('md')</script> *hi*")
    page.get_by_role("button", name="Save and publish").click()
    expect(page).to_have_url(f"{base}/admin/plans/history")
    for path in ("/pricing", "/admin/plans/history", "/admin/plans"):
        page.goto(f"{base}{path}")
    page.goto(f"{base}/pricing")
    expect(page.locator("#plan-professional .tagline")).to_have_text(
        "<script>alert('tagline')</script>"
    )
    expect(page.locator("#plan-professional .badge")).to_have_text('<img src=x onerror="alert(1)">')
    expect(page.locator("#plan-professional .description em")).to_have_text("hi")
    assert dialogs == []
    context.close()
