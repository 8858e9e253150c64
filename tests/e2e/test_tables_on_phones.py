"""Every page with a table, in Chromium at 390 px: no word or number is broken mid-way.

A table squeezed into a phone either stacks its rows as labelled facts or scrolls sideways inside
its own box; what it may never do is break "Credits" into "CRE DITS" or "-$35.00" into "-$3 5.00".
The check measures what the browser actually laid out (see `BROKEN_WORDS_JS`)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import text

from tests.e2e.test_subscribe import open_account_until, pay, sign_up
from webapp.extensions import db

# They make accounts and read the database of the site they test: in this process only.
pytestmark = pytest.mark.in_process

SHOTS = Path(os.environ.get("SHOTS_DIR", "/tmp/phones-shots"))
PHONE = {"width": 390, "height": 844}

# For every visible cell (and button), every word of its text: the word's glyphs must sit on one
# line. A Range over the word gives one client rect per line box the word occupies; two different
# tops mean the word was wrapped inside itself. This is independent of fonts and of how the cell
# was narrowed (overflow-wrap, word-break, a too-small column): only the result counts.
BROKEN_WORDS_JS = """
(selector) => {
  // Not shown to the eye: display: none, or clipped to a pixel for screen readers only.
  const hidden = (element) => {
    if (!element.getClientRects().length) return true;
    for (let e = element; e; e = e.parentElement) {
      const box = e.getBoundingClientRect();
      if (getComputedStyle(e).overflow === "hidden" && (box.width <= 1 || box.height <= 1)) {
        return true;
      }
    }
    return false;
  };
  const broken = [];
  for (const element of document.querySelectorAll(selector)) {
    if (hidden(element)) continue;
    const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const text = node.textContent;
      for (const match of text.matchAll(/\\S+/g)) {
        const range = document.createRange();
        range.setStart(node, match.index);
        range.setEnd(node, match.index + match[0].length);
        const tops = new Set();
        for (const rect of range.getClientRects()) {
          if (rect.width > 0) tops.add(Math.round(rect.top));
        }
        if (tops.size > 1) broken.push(`${element.tagName.toLowerCase()}: ${match[0]}`);
      }
    }
  }
  return broken;
}
"""
CELLS = "td, th, button, .button, .key-tag"


def assert_words_intact(page: Page, name: str) -> None:
    """No word broken inside a cell or a button, and the page itself never scrolls sideways."""
    page.wait_for_load_state("load")
    assert page.locator("table, .key-list").count() > 0, f"{name}: no table on the page"
    broken = page.evaluate(BROKEN_WORDS_JS, CELLS)
    assert broken == [], f"{name}: words broken mid-way at 390 px: {broken}"
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{name}: the page scrolls sideways ({width}px)"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}-390.png"), full_page=True)
    for number, table in enumerate(page.locator("table, .key-list").all()):
        if table.is_visible():
            table.screenshot(path=str(SHOTS / f"{name}-table{number}-390.png"))
    page.set_viewport_size({"width": 1280, "height": 800})
    page.screenshot(path=str(SHOTS / f"{name}-1280.png"), full_page=True)
    page.set_viewport_size(PHONE)


# Every button: the gap between its top and the bottom of what is just above it, in pixels.
BUTTON_GAPS_JS = """
() => [...document.querySelectorAll("main button, main .button")].flatMap((button) => {
  const box = button.getBoundingClientRect();
  if (!box.width) return [];
  // The nearest rendered element before the button (hidden inputs take no room), going up
  // through its ancestors until one has such a sibling.
  const shown = (e) => e.getBoundingClientRect().height > 0;
  let previous = null;
  for (let e = button; e && e.tagName !== "MAIN" && !previous; e = e.parentElement) {
    for (let s = e.previousElementSibling; s && !previous; s = s.previousElementSibling) {
      if (shown(s)) previous = s.getBoundingClientRect();
    }
  }
  if (!previous || previous.bottom > box.top + 1) return [];  // first, or side by side
  return [[button.textContent.trim(), Math.round(box.top - previous.bottom)]];
})
"""


def assert_buttons_have_room(page: Page, name: str) -> None:
    touching = [(text, gap) for text, gap in page.evaluate(BUTTON_GAPS_JS) if gap < 8]
    assert touching == [], f"{name}: buttons touching what is above them: {touching}"


def test_every_table_keeps_its_words_whole_at_390_px(browser, live_server):
    app, url = live_server.app, live_server.url
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()

    # A paying customer with a renewal: credits, invoices, a portal with invoices, an API key.
    page.goto(f"{url}/pricing")
    page.locator("#plan-professional").get_by_role(
        "link", name=re.compile("Choose Professional")
    ).click()
    sign_up(page, "phone@example.com")
    pay(page, "4242 4242 4242 4242")
    expect(page.get_by_role("heading", level=1)).to_contain_text("You're on Professional")
    assert app.test_client().post("/sandbox/control/advance", json={"days": 32}).status_code == 200
    open_account_until(page, url, "6,000")
    with app.app_context():  # the same person edits copy, so one session sees every table
        db.session.execute(
            text("UPDATE users SET email_verified_at = CURRENT_TIMESTAMP, role = 'admin'")
        )
        db.session.commit()
    page.goto(f"{url}/account")
    panel = page.locator("#api-keys")
    panel.get_by_label("Key name").fill("Wallboard")
    panel.get_by_role("button", name="Create API key").click()
    page.get_by_role("link", name="Done, back to my account").click()
    expect(page.get_by_test_id("api-key-row")).to_have_count(1)
    assert_words_intact(page, "account")
    assert_buttons_have_room(page, "account")

    page.goto(f"{url}/account/credits")
    assert_words_intact(page, "credit-history")
    page.goto(f"{url}/account/invoices")
    assert_words_intact(page, "billing-history")

    page.goto(f"{url}/account")
    page.get_by_role("button", name="Manage billing").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Manage your subscription")
    assert_words_intact(page, "portal")
    assert_buttons_have_room(page, "portal")
    # Redirect after POST: a switch lands back on the portal's own address, not the POST path.
    portal_url = page.url
    page.get_by_label("New plan").select_option(index=0)
    page.get_by_role("button", name="Switch plan").click()
    expect(page.locator(".flash")).to_be_visible()
    assert page.url == portal_url

    page.goto(f"{url}/account")
    with context.expect_page() as opened:
        page.get_by_test_id("invoice-hosted").first.click()
    invoice = opened.value
    assert_words_intact(invoice, "hosted-invoice")
    invoice.close()

    # Copy history: two published revisions besides the first, with their change lists.
    for tagline in ("Built for people who ship every day.", "For people who ship."):
        page.goto(f"{url}/admin/plans")
        page.locator("#professional-tagline").fill(tagline)
        page.get_by_role("button", name="Save and publish").click()
        expect(page).to_have_url(f"{url}/admin/plans/history")
    assert_words_intact(page, "copy-history")

    for path, name in (("/sandbox/mailbox", "mailbox"), ("/terms", "terms")):
        page.goto(f"{url}{path}")
        assert_words_intact(page, name)
    context.close()
