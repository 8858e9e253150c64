"""Every page of the site through axe-core, at 1280 and 390 px: public pages, sign-up and log-in,
the sandbox's hosted Checkout, 3-D Secure, portal and invoice pages, the account pages, the dev
mailbox, the error pages, and (in process) the copy editor. Any violation fails, with axe's
report of every page at once; screenshots of each page go to SHOTS_DIR.

The walk goes through the pages as a person does (sign up, verify, pay, manage billing), so the
same test runs against a deployed sandbox site (`--base-url`), except the copy editor's, which
needs a marketing account made in process."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import create_user
from tests.e2e.conftest import DESKTOP, PHONE, SHOTS, axe_report, unique_email
from tests.e2e.test_copy_editor import PASSWORD as EDITOR_PASSWORD
from tests.e2e.test_copy_editor import log_in
from tests.e2e.test_subscribe import open_account_until, pay, sign_up

PASSWORD = "a long enough password"


class Audit:
    """Runs axe on each page at both widths and keeps every finding for one report at the end,
    so a run shows all that is wrong, not the first page only."""

    def __init__(self, page: Page) -> None:
        self.page, self.findings, self.pages = page, [], []

    def __call__(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.wait_for_load_state("load")
        for size in (DESKTOP, PHONE):
            self.page.set_viewport_size(size)
            self.page.screenshot(path=str(SHOTS / f"a11y-{name}-{size['width']}.png"))
            report = axe_report(self.page, name)
            if report:
                self.findings.append(report)
        self.page.set_viewport_size(DESKTOP)
        self.pages.append(name)

    def visit(self, url: str, name: str, status: int = 200) -> None:
        response = self.page.goto(url)
        assert response is not None and response.status == status, (url, response)
        self(name)

    def check(self) -> None:
        assert not self.findings, "\n\n".join(self.findings)


def open_mail(page: Page, base: str, subject: str) -> None:
    page.goto(f"{base}/sandbox/mailbox/")
    page.get_by_role("link", name=subject).first.click()
    expect(page.get_by_role("heading", name=subject)).to_be_visible()


def test_every_public_and_member_page_has_no_axe_violation(live_server, page):
    base, audit = live_server.url, Audit(page)

    # Anonymous visitors.
    audit.visit(f"{base}/pricing", "pricing")
    audit.visit(f"{base}/pricing?cycle=yearly", "pricing-yearly")
    audit.visit(f"{base}/terms", "terms")
    audit.visit(f"{base}/privacy", "privacy")
    audit.visit(f"{base}/login", "login")
    audit.visit(f"{base}/password/forgot", "forgot-password")
    audit.visit(f"{base}/password/reset/not-a-token", "reset-link-expired", status=400)
    audit.visit(f"{base}/no-such-page", "error-404", status=404)
    audit.visit(f"{base}/signup?plan=professional&cycle=monthly", "signup-with-plan")

    # Sign up with a plan; a form with errors first.
    email = unique_email("axe")
    page.get_by_label("Email").fill("not an address")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name=re.compile("Sign up")).click()
    audit("signup-errors")
    sign_up(page, email, plan_chosen=False)
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account is ready")
    audit("signup-done")

    # The sandbox's hosted Checkout: a declined card, then a good one.
    page.get_by_role("button", name="Continue to payment").click()
    expect(page.get_by_text("Sandbox — no real money")).to_be_visible()
    audit("sandbox-checkout")
    pay(page, "4000 0000 0000 0002")
    expect(page.get_by_role("alert")).to_contain_text(re.compile("declined", re.I))
    audit("sandbox-checkout-declined")
    pay(page, "4242 4242 4242 4242")
    expect(page.get_by_role("heading", level=1)).to_contain_text("You're on Professional")
    audit("checkout-success")

    # The account and its pages.
    open_account_until(page, base, "3,000")
    audit("account")
    audit.visit(f"{base}/account/credits", "account-credits")
    audit.visit(f"{base}/account/invoices", "account-invoices")
    audit.visit(f"{base}/account/email", "account-change-email")
    audit.visit(f"{base}/account/password", "account-change-password")
    audit.visit(f"{base}/account/notifications", "account-notifications")
    audit.visit(f"{base}/account/company", "account-company")
    audit.visit(f"{base}/account/delete", "account-delete")
    audit.visit(f"{base}/billing/switch?plan=business&cycle=monthly", "switch-upgrade")
    audit.visit(f"{base}/billing/switch?plan=starter&cycle=monthly", "switch-downgrade")
    audit.visit(f"{base}/checkout/cancel", "checkout-cancel")
    audit.visit(f"{base}/admin/plans", "error-403", status=403)

    # The hosted invoice page of the first invoice.
    page.goto(f"{base}/account/invoices")
    hosted = page.get_by_test_id("invoice-hosted").first.get_attribute("href")
    audit.visit(hosted, "sandbox-hosted-invoice")  # it opens in a new tab

    # The dev mailbox, a message, and verifying the address; then an API key.
    audit.visit(f"{base}/sandbox/mailbox/", "mailbox")
    open_mail(page, base, "Verify your email address for LLMGen")
    audit("mailbox-message")
    link = page.frame_locator("iframe.mail-frame").get_by_role("link", name="Verify my address")
    with page.expect_navigation():
        link.click()
    expect(page.get_by_text(f"Thank you: {email} is verified.")).to_be_visible()
    audit("account-verified")
    page.get_by_label("Key name").fill("Accessibility")
    page.get_by_role("button", name="Create API key").click()
    expect(page.get_by_test_id("new-api-key")).to_be_visible()
    audit("api-key-created")

    # The portal.
    page.goto(f"{base}/account")
    page.get_by_role("button", name="Manage billing").click()
    expect(page.get_by_role("heading", name="Manage your subscription")).to_be_visible()
    audit("sandbox-portal")

    # 3-D Secure, for someone else.
    page.context.clear_cookies()
    page.goto(f"{base}/signup?plan=starter&cycle=monthly")
    sign_up(page, unique_email("axe-3ds"))
    pay(page, "4000 0027 6000 3184")
    expect(page.get_by_role("button", name="Complete")).to_be_visible()
    audit("sandbox-3ds")

    audit.check()


@pytest.mark.in_process
def test_the_copy_editor_has_no_axe_violation(live_server, page):
    base, audit = live_server.url, Audit(page)
    create_user(
        live_server.app, email="mia@example.com", password=EDITOR_PASSWORD, role="marketing"
    )
    log_in(page, base, "mia@example.com")
    audit.visit(f"{base}/admin/plans", "admin-plans")
    page.locator("#professional-tagline").fill("A new tagline for professionals")
    page.get_by_role("button", name="Save and preview").click()
    expect(page).to_have_url(f"{base}/admin/plans/preview")
    audit("admin-preview")
    page.get_by_role("button", name="Publish this draft").click()
    expect(page).to_have_url(f"{base}/admin/plans/history")
    audit("admin-history")
    audit.visit(f"{base}/admin/plans/history/1", "admin-revision")
    audit.check()
