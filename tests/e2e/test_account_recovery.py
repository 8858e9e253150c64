"""Account recovery and control as a person does it in Chromium, reading mail on the dev mailbox:
sign up and verify; forget the password and reset it (the old session elsewhere ends); change
the address and the password."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.e2e.conftest import shoot, unique_email

PASSWORD = "a long enough password"
RESET_PASSWORD = "violet harbour lantern 81"
CHANGED_PASSWORD = "copper meadow whistle 53"


def open_mail(page: Page, base: str, subject: str, button: str) -> str:
    """Open the newest message with `subject` on the dev mailbox and click its `button`, as a
    person reading the mail does; the URL the click led to (the whole tab navigates: our pages
    refuse to be framed)."""
    page.goto(f"{base}/sandbox/mailbox/")
    page.get_by_role("link", name=subject).first.click()
    expect(page.get_by_role("heading", name=subject)).to_be_visible()
    link = page.frame_locator("iframe.mail-frame").get_by_role("link", name=button)
    href = link.get_attribute("href")
    assert href and href.startswith(base), href
    with page.expect_navigation():
        link.click()
    return href


def test_sign_up_verify_reset_and_change_email_and_password(new_context, live_server, page):
    base = live_server.url
    email, new_email = unique_email("grace"), unique_email("grace", "new.example")

    # Sign up: a banner asks to verify; the mail's link does it.
    page.goto(f"{base}/signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(f"{base}/account")
    banner = page.get_by_test_id("verify-banner")
    expect(banner).to_contain_text("Please verify your email address")
    expect(page.get_by_test_id("api-keys-need-verification")).to_be_visible()
    shoot(page, "account-unverified")
    open_mail(page, base, "Verify your email address for LLMGen", "Verify my address")
    expect(page).to_have_url(f"{base}/account")
    expect(page.get_by_text(f"Thank you: {email} is verified.")).to_be_visible()
    expect(page.get_by_test_id("verify-banner")).to_have_count(0)
    expect(page.get_by_role("button", name="Create API key")).to_be_visible()

    # Another browser logged in as Grace.
    elsewhere = new_context(viewport={"width": 1280, "height": 800})
    other = elsewhere.new_page()
    other.goto(f"{base}/login")
    other.get_by_label("Email").fill(email)
    other.get_by_label("Password").fill(PASSWORD)
    other.get_by_role("button", name="Log in").click()
    expect(other).to_have_url(f"{base}/account")

    # Forgotten: from the log-in page of a third browser, without an account session.
    phone = new_context(viewport={"width": 1280, "height": 800})
    person = phone.new_page()
    person.goto(f"{base}/login")
    person.get_by_role("link", name="Forgot your password?").click()
    expect(person.get_by_role("heading", name="Forgot your password?")).to_be_visible()
    shoot(person, "forgot")
    person.get_by_label("Email").fill(email.upper())
    person.get_by_role("button", name="Send the link").click()
    expect(person.get_by_test_id("reset-sent")).to_contain_text(email)
    shoot(person, "forgot-sent")

    link = open_mail(person, base, "Reset your LLMGen password", "Choose a new password")
    expect(person).to_have_url(f"{base}/password/reset")  # the token left the address bar
    expect(person.get_by_role("heading", name="Choose a new password")).to_be_visible()
    person.get_by_label("New password", exact=True).fill("password123")
    person.get_by_role("button", name="Save the new password").click()
    expect(person.locator("#new_password-error")).to_contain_text("too easy to guess")
    shoot(person, "reset")
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
    shoot(person, "reset-used")

    # Change the address: confirmed from a link mailed to the new one.
    person.goto(f"{base}/account")
    expect(person.get_by_role("heading", name="Sign-in and security")).to_be_visible()
    person.get_by_role("link", name="Change email").click()
    shoot(person, "change-email")
    person.get_by_label("New email address").fill(new_email)
    person.get_by_label("Current password", exact=True).fill(RESET_PASSWORD)
    person.get_by_role("button", name="Send the link").click()
    expect(person.get_by_text(f"We sent a link to {new_email}")).to_be_visible()
    open_mail(person, base, "Confirm your new email address for LLMGen", "Use this address")
    expect(person.get_by_text(f"Your email address is now {new_email}.")).to_be_visible()
    expect(person.get_by_text(f"Signed in as {new_email}")).to_be_visible()

    # Change the password: this browser stays in, and the new one logs in.
    person.get_by_role("link", name="Change password").click()
    shoot(person, "change-password")
    person.get_by_label("Current password", exact=True).fill("not the password at all")
    person.get_by_label("New password", exact=True).fill(CHANGED_PASSWORD)
    person.get_by_role("button", name="Change password").click()
    expect(person.locator("#current_password-error")).to_have_text(
        "That is not your current password."
    )
    person.get_by_label("Current password", exact=True).fill(RESET_PASSWORD)
    person.get_by_label("New password", exact=True).fill(CHANGED_PASSWORD)
    person.get_by_role("button", name="Change password").click()
    expect(person.get_by_text("Every other session has ended.")).to_be_visible()
    person.goto(f"{base}/account")
    expect(person).to_have_url(f"{base}/account")

    other.goto(f"{base}/login")
    other.get_by_label("Email").fill(new_email)
    other.get_by_label("Password").fill(CHANGED_PASSWORD)
    other.get_by_role("button", name="Log in").click()
    expect(other).to_have_url(f"{base}/account")
    elsewhere.close()
    phone.close()
