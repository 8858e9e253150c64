"""Plan changes in Chromium, as the policy says: downgrades wait, upgrades apply at once."""

import re

from playwright.sync_api import expect

from tests.e2e.conftest import unique_email
from tests.e2e.test_subscribe import open_account_until, pay, sign_up
from webapp.plan_changes import CHANGE_QUESTION

DATE = re.compile(r"\d{1,2} \w{3} \d{4}")  # our pages: "29 Dec 2026"
PORTAL_DATE = re.compile(r"\d{1,2} \w+ \d{4}")  # the sandbox portal: "29 Dec 2026"


def choose_in_portal(page, label_part: str) -> None:
    page.get_by_role("button", name="Manage billing").click()
    select = page.get_by_label("New plan")
    label = next(t for t in select.locator("option").all_inner_texts() if label_part in t)
    select.select_option(label=label)
    page.get_by_role("button", name="Switch plan").click()


def test_a_downgrade_waits_for_the_period_end_and_an_upgrade_applies_at_once(live_server, page):
    url = live_server.url
    page.goto(f"{url}/signup?plan=business&cycle=monthly")
    sign_up(page, unique_email("switcher"))
    pay(page, "4242 4242 4242 4242")
    expect(page.get_by_role("heading", level=1)).to_contain_text("You're on Business")
    open_account_until(page, url, "10,000")

    # The pricing page says what each switch will do, and the FAQ states the policy.
    page.goto(f"{url}/pricing")
    expect(page.locator("#plan-starter .switch-hint")).to_have_text(
        "From the end of your current period"
    )
    expect(page.locator("#plan-agency .switch-hint")).to_have_text("Applies at once")
    faq = page.locator(".faq")
    expect(faq).to_contain_text(CHANGE_QUESTION)
    expect(faq).to_contain_text("takes effect at the end of your current billing period")

    # A downgrade in the portal is scheduled: the portal and the account say when.
    page.goto(f"{url}/account")
    choose_in_portal(page, "Starter — $4.99 monthly")
    scheduled = page.locator("#scheduled-change")
    expect(scheduled).to_contain_text("Switches to Starter")
    expect(scheduled).to_contain_text(PORTAL_DATE)
    open_account_until(page, url, "Switches to Starter")
    expect(page.get_by_test_id("plan-name")).to_have_text("Business")
    expect(page.get_by_test_id("pending-change")).to_contain_text(DATE)

    # Changing one's mind, then an upgrade: it applies at once.
    page.get_by_role("button", name="Manage billing").click()
    page.get_by_role("button", name="Cancel scheduled change").click()
    expect(page.locator("#scheduled-change")).to_have_count(0)
    page.goto(f"{url}/account")
    choose_in_portal(page, "Agency — $99.99 monthly")
    expect(page.get_by_text(re.compile("Your plan is now Agency"))).to_be_visible()
    open_account_until(page, url, ">Agency<")
    expect(page.get_by_test_id("plan-name")).to_have_text("Agency")
    expect(page.get_by_test_id("pending-change")).to_have_count(0)
