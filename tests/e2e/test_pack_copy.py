"""Marketing renames a credit pack in Chromium; the pricing and account pages show it at once."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from tests.conftest import create_user
from tests.e2e.test_copy_editor import log_in

pytestmark = [pytest.mark.e2e, pytest.mark.in_process]


def test_marketing_renames_a_pack_and_the_pricing_page_shows_it(browser: Browser, live_server):
    base = live_server.url
    create_user(live_server.app, email="mia@example.com", role="marketing")
    create_user(live_server.app, email="ada@example.com")
    editor_context, visitor_context, member_context = (browser.new_context() for _ in range(3))
    editor, visitor, member = (
        c.new_page() for c in (editor_context, visitor_context, member_context)
    )

    # Seen before the publish, so the publish has to get past the cached pages.
    visitor.goto(f"{base}/pricing")
    expect(visitor.get_by_test_id("pack-pkg_pro")).to_contain_text("Pro Pack")
    log_in(member, base, "ada@example.com")
    expect(member.get_by_test_id("pack-pkg_pro")).to_contain_text("Pro Pack")

    log_in(editor, base, "mia@example.com")
    editor.goto(f"{base}/admin/plans")
    fieldset = editor.locator("#edit-pkg_pro")
    expect(fieldset).to_contain_text("$19.99, once")  # read-only facts
    fieldset.get_by_label("Display name").fill("Creator Pack")
    fieldset.get_by_label("Short description").fill("For makers with a big week ahead.")
    fieldset.get_by_label("Badge").fill("New")
    editor.get_by_role("button", name="Save and publish").click()
    expect(editor).to_have_url(f"{base}/admin/plans/history")
    expect(editor.locator("#revision-2")).to_contain_text("Creator Pack (credit pack)")

    visitor.goto(f"{base}/pricing")
    visitor.reload()  # the browser kept the public page (max-age); a reload revalidates it
    pack = visitor.get_by_test_id("pack-pkg_pro")
    expect(pack).to_contain_text("Creator Pack")
    expect(pack).to_contain_text("For makers with a big week ahead.")
    expect(pack).to_contain_text("New")
    expect(pack).to_contain_text("500 credits")
    expect(pack).to_contain_text("$19.99")
    expect(visitor.get_by_role("link", name="Buy Creator Pack (with an account)")).to_be_visible()

    member.goto(f"{base}/account")
    expect(
        member.get_by_role("button", name="Buy Creator Pack: 500 credits for $19.99")
    ).to_be_visible()

    for context in (editor_context, visitor_context, member_context):
        context.close()
