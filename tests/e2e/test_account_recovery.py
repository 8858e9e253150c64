"""Account recovery and control as a person does it in Chromium, reading mail on the dev mailbox:
sign up and verify; forget the password and reset it (the old session elsewhere ends); change
the address and the password."""

from __future__ import annotations

import os
import re

from playwright.sync_api import Page, expect

PASSWORD = "a long enough password"
RESET_PASSWORD = "violet harbour lantern 81"
CHANGED_PASSWORD = "copper meadow whistle 53"
WIDTHS = ((1280, 800), (390, 844))


def look(page: Page, name: str) -> None:
    """At a desktop and a phone width: nothing scrolls sideways; a screenshot of each when
    SCREENSHOT_DIR is set (the pages were looked at this way)."""
    shots = os.environ.get("SCREENSHOT_DIR")
    for width, height in WIDTHS:
        page.set_viewport_size({"width": width, "height": height})
        assert page.evaluate("document.documentElement.scrollWidth") <= width, (name, width)
        if shots:
            os.makedirs(shots, exist_ok=True)
            page.screenshot(path=f"{shots}/{name}-{width}.png", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})


def open_mail(page: Page, base: str, subject: str, button: str) -> str:
    """Open the newest message with `subject` on the dev mailbox; the URL of its `button`.

    The message's HTML sits in a sandboxed frame that our own pages refuse to be shown in, so
    the link is followed in the page itself, as a mail client opens it in a browser.
    """
    page.goto(f"{base}/sandbox/mailbox/")
    page.get_by_role("link", name=subject).first.click()
    expect(page.get_by_role("heading", name=subject)).to_be_visible()
    frame = page.frame_locator("iframe.mail-frame")
    href = frame.get_by_role("link", name=button).get_attribute("href")
    assert href and href.startswith(base), href
    return href


def test_sign_up_verify_reset_and_change_email_and_password(browser, live_server, page):
    base = live_server.url

    # Sign up: a banner asks to verify; the mail's link does it.
    page.goto(f"{base}/signup")
    page.get_by_label("Email").fill("grace@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(f"{base}/account")
    banner = page.get_by_test_id("verify-banner")
    expect(banner).to_contain_text("Please verify your email address")
    expect(page.get_by_test_id("api-keys-need-verification")).to_be_visible()
    look(page, "account-unverified")
    page.goto(open_mail(page, base, "Verify your email address for LLMGen", "Verify my address"))
    expect(page).to_have_url(f"{base}/account")
    expect(page.get_by_text("Thank you: grace@example.com is verified.")).to_be_visible()
    expect(page.get_by_test_id("verify-banner")).to_have_count(0)
    expect(page.get_by_role("button", name="Create API key")).to_be_visible()

    # Another browser logged in as Grace.
    elsewhere = browser.new_context(viewport={"width": 1280, "height": 800})
    other = elsewhere.new_page()
    other.goto(f"{base}/login")
    other.get_by_label("Email").fill("grace@example.com")
    other.get_by_label("Password").fill(PASSWORD)
    other.get_by_role("button", name="Log in").click()
    expect(other).to_have_url(f"{base}/account")

    # Forgotten: from the log-in page of a third browser, without an account session.
    phone = browser.new_context(viewport={"width": 1280, "height": 800})
    person = phone.new_page()
    person.goto(f"{base}/login")
    person.get_by_role("link", name="Forgot your password?").click()
    expect(person.get_by_role("heading", name="Forgot your password?")).to_be_visible()
    look(person, "forgot")
    person.get_by_label("Email").fill("Grace@Example.com")
    person.get_by_role("button", name="Send the link").click()
    expect(person.get_by_test_id("reset-sent")).to_contain_text("grace@example.com")
    look(person, "forgot-sent")

    link = open_mail(person, base, "Reset your LLMGen password", "Choose a new password")
    person.goto(link)
    expect(person).to_have_url(f"{base}/password/reset")  # the token left the address bar
    expect(person.get_by_role("heading", name="Choose a new password")).to_be_visible()
    person.get_by_label("New password", exact=True).fill("password123")
    person.get_by_role("button", name="Save the new password").click()
    expect(person.get_by_text("too easy to guess")).to_be_visible()
    look(person, "reset")
    person.get_by_label("New password", exact=True).fill(RESET_PASSWORD)
    person.get_by_role("button", name="Save the new password").click()
    expect(person).to_have_url(f"{base}/account")
    expect(person.get_by_text("Your password was changed.")).to_be_visible()

    # The other browsers' sessions ended: their next page asks them to log in.
    other.reload()
    expect(other).to_have_url(re.compile(r"/login"))
    expect(other.get_by_text("Please log in to continue.")).to_be_visible()
    page.goto(f"{base}/account")
    expect(page).to_have_url(re.compile(r"/login"))
    # The link was used: opening it again says so, with a way to ask again.
    person.goto(link)
    expect(person.get_by_text("This link has expired")).to_be_visible()
    expect(person.get_by_role("link", name="Send me a new link")).to_be_visible()
    look(person, "reset-used")

    # Change the address: confirmed from a link mailed to the new one.
    person.goto(f"{base}/account")
    expect(person.get_by_role("heading", name="Sign-in and security")).to_be_visible()
    person.get_by_role("link", name="Change email").click()
    look(person, "change-email")
    person.get_by_label("New email address").fill("grace@new.example")
    person.get_by_label("Current password", exact=True).fill(RESET_PASSWORD)
    person.get_by_role("button", name="Send the link").click()
    expect(person.get_by_text("We sent a link to grace@new.example")).to_be_visible()
    person.goto(
        open_mail(person, base, "Confirm your new email address for LLMGen", "Use this address")
    )
    expect(person.get_by_text("Your email address is now grace@new.example.")).to_be_visible()
    expect(person.get_by_text("Signed in as grace@new.example")).to_be_visible()

    # Change the password: this browser stays in, and the new one logs in.
    person.get_by_role("link", name="Change password").click()
    look(person, "change-password")
    person.get_by_label("Current password", exact=True).fill("not the password at all")
    person.get_by_label("New password", exact=True).fill(CHANGED_PASSWORD)
    person.get_by_role("button", name="Change password").click()
    expect(person.get_by_text("That is not your current password.")).to_be_visible()
    person.get_by_label("Current password", exact=True).fill(RESET_PASSWORD)
    person.get_by_label("New password", exact=True).fill(CHANGED_PASSWORD)
    person.get_by_role("button", name="Change password").click()
    expect(person.get_by_text("Every other session has ended.")).to_be_visible()
    person.goto(f"{base}/account")
    expect(person).to_have_url(f"{base}/account")

    other.goto(f"{base}/login")
    other.get_by_label("Email").fill("grace@new.example")
    other.get_by_label("Password").fill(CHANGED_PASSWORD)
    other.get_by_role("button", name="Log in").click()
    expect(other).to_have_url(f"{base}/account")
    elsewhere.close()
    phone.close()
