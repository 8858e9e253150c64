"""Tax end to end in Chromium: a German business with a VAT number sees "plus tax where
applicable" on the pricing page, German VAT and the total on the hosted Checkout page, and the
tax on the invoice in the billing history; its address and VAT number fill in the company
details, which it then edits from the account page."""

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import shoot
from tests.e2e.test_subscribe import open_account_until, pay, sign_up

# It reads and changes the app in process: not against a --base-url site.
pytestmark = pytest.mark.in_process


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {
        "CHECKOUT_OVERRIDES": {
            "CHECKOUT_AUTOMATIC_TAX": "true",
            "CHECKOUT_TAX_ID_COLLECTION": "true",
        }
    }


def test_a_german_business_sees_vat_at_checkout_and_on_its_invoice(live_server, page):
    url = live_server.url
    page.goto(f"{url}/pricing")
    expect(page.get_by_test_id("tax-note").first).to_have_text("plus tax where applicable")
    page.locator("#plan-professional").get_by_role(
        "link", name=re.compile("Choose Professional")
    ).click()
    sign_up(page, "gmbh@example.com")

    # Stripe's page in the sandbox: the address (and VAT number) first, then tax and total.
    expect(page.get_by_role("heading", name="Billing address")).to_be_visible()
    expect(page.get_by_label("Card number")).to_have_count(0)
    page.get_by_label("Country").select_option("DE")
    page.get_by_label("Address", exact=True).fill("Unter den Linden 1")
    page.get_by_label("Postal code").fill("10117")
    page.get_by_label("City").fill("Berlin")
    page.get_by_label("I'm purchasing as a business").check()
    page.get_by_label("Business name").fill("Ada GmbH")
    page.get_by_label("VAT number").fill("DE12")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_text("This VAT number is not valid for its country")).to_be_visible()
    page.get_by_label("VAT number").fill("DE123456789")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_test_id("amount-tax")).to_have_text("$2.47")  # 19% of $12.99
    expect(page.get_by_test_id("amount-total")).to_have_text("$15.46")
    expect(page.locator("body")).to_contain_text("VAT 19%")
    shoot(page, "checkout-tax")

    pay(page, "4242 4242 4242 4242")
    expect(page.get_by_role("heading", level=1)).to_contain_text("You're on Professional")
    open_account_until(page, url, "$2.47")
    history = page.get_by_test_id("billing-history")
    expect(history.get_by_test_id("invoice-tax")).to_have_text("$2.47")
    expect(history.get_by_test_id("invoice-amount")).to_have_text("$15.46")
    expect(page.get_by_test_id("credit-balance")).to_have_text("3,000")  # tax changes no credits
    # What was typed at Checkout reached Stripe's customer, and our copy by webhook.
    open_account_until(page, url, "DE123456789")
    expect(page.get_by_test_id("company-name")).to_have_text("Ada GmbH")
    expect(page.get_by_test_id("company-vat")).to_have_text("DE123456789")
    page.get_by_test_id("company-details").scroll_into_view_if_needed()
    shoot(page, "account-tax")

    # Company details from the account page: a bad VAT number is refused in words.
    page.get_by_test_id("edit-company").click()
    expect(page.get_by_label("VAT number")).to_have_value("DE123456789")
    page.get_by_label("Company name").fill("Ada Software GmbH")
    page.get_by_label("VAT number").fill("FR123")
    page.get_by_role("button", name="Save company details").click()
    expect(page.locator("#vat_number-error")).to_contain_text("This is not a VAT number of Germany")
    shoot(page, "company-error")
    page.get_by_label("VAT number").fill("DE 987 654 321")
    page.get_by_role("button", name="Save company details").click()
    expect(page.get_by_text("Company details saved.")).to_be_visible()
    expect(page.get_by_test_id("company-name")).to_have_text("Ada Software GmbH")
    expect(page.get_by_test_id("company-vat")).to_have_text("DE987654321")
