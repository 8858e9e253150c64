"""The CDN-ready pricing page in Chromium (issue 17, item 3): served public and cookie-free to a
visitor without a session, its links still lead to sign-up and Checkout, and once logged in the
visitor sees their own page, not the public copy their browser kept."""

import re

from playwright.sync_api import expect

from tests.e2e.conftest import unique_email
from tests.e2e.test_subscribe import sign_up


def test_sign_up_and_checkout_from_the_public_page(live_server, page):
    url = live_server.url
    response = page.goto(f"{url}/pricing")
    headers = response.all_headers()
    assert headers["cache-control"].startswith("public, max-age=")
    assert "etag" in headers and "set-cookie" not in headers
    assert "cookie" not in headers.get("vary", "").lower()
    assert page.context.cookies() == []

    page.locator("#plan-professional").get_by_role(
        "link", name=re.compile("Choose Professional")
    ).click()
    expect(page.locator(".plan-summary")).to_contain_text("Professional, monthly")
    sign_up(page, unique_email("cdn-buyer"))
    # On to the (sandbox) hosted Checkout for the plan chosen on the public page.
    expect(page.get_by_text("Sandbox — no real money")).to_be_visible()

    # Back on our site, the nav's Pricing link: the browser holds the public copy (max-age), yet
    # a member gets their own page (logging in cleared the browser's cache of our pages).
    page.goto(f"{url}/account")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Pricing").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    expect(page.get_by_role("link", name="Sign up")).to_have_count(0)
