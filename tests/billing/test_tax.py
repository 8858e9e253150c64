"""Tax never changes credits (README, "Tax"); what is charged is the price less any discount,
plus the tax of where the customer is.

The invariants, through the site and the real SDK against the sandbox (a member checks out on
the hosted page from a random country, as a consumer or a business with a VAT number, with or
without a promotion code, with automatic tax on or off):

- charged: total = subtotal - discount + tax, and tax = round-half-up(rate x (subtotal -
  discount)) at the rate of the customer's country (0 with reverse charge or where the account
  does not collect);
- granted: the plan's credits, identical whatever the tax, the country or the option;
- taken back: a refund takes credits back in proportion to what was paid *tax included*, so a
  refund of all of a taxed invoice takes all its credits, and half of it half of them.
"""

from __future__ import annotations

import dataclasses
import itertools
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from math import floor
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.api.conftest import bearer, issue_token
from tests.conftest import AuthActions, create_user, csrf_token
from webapp import billing
from webapp.billing.credits import credits_for_invoice
from webapp.catalog import get_catalog
from webapp.stripe_gateway import get_gateway

_serial = itertools.count()

# The sandbox's table (webapp/sandbox/operations/tax.py), written out again: the test states
# what a buyer in each country must be charged, it does not ask the code under test.
RATES = {"DE": 19, "FR": 20, "NL": 21, "GB": 20, "IT": 22, "US": 0, "JP": 0}
ADDRESSES = {
    "DE": {"line1": "Unter den Linden 1", "city": "Berlin", "postal_code": "10117"},
    "FR": {"line1": "1 rue de Rivoli", "city": "Paris", "postal_code": "75001"},
    "NL": {"line1": "Dam 1", "city": "Amsterdam", "postal_code": "1012 JS"},
    "GB": {"line1": "1 Downing St", "city": "London", "postal_code": "SW1A 2AA"},
    "IT": {"line1": "Via Roma 1", "city": "Roma", "postal_code": "00184"},
    "US": {"line1": "1 Main St", "city": "New York", "postal_code": "10001", "state": "NY"},
    "JP": {"line1": "1-1 Chiyoda", "city": "Tokyo", "postal_code": "100-0001"},
}
VAT_NUMBERS = {
    "DE": "DE123456789",
    "FR": "FRAB123456789",
    "NL": "NL123456789B01",
    "GB": "GB123456789",
    "IT": "IT12345678901",
}


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {
        "CHECKOUT_OVERRIDES": {
            "CHECKOUT_AUTOMATIC_TAX": "true",
            "CHECKOUT_TAX_ID_COLLECTION": "true",
        }
    }


def set_automatic_tax(app: Flask, on: bool) -> None:
    options = app.extensions["checkout_options"]
    app.extensions["checkout_options"] = dataclasses.replace(
        options, automatic_tax=on, tax_id_collection=on
    )


def expected_tax(country: str, business: bool, taxable: int) -> int:
    reverse_charge = business and country != "DE"  # the sandbox seller sits in Germany
    rate = 0 if reverse_charge else RATES[country]
    return int((Decimal(taxable) * rate / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def checkout(
    app: Flask, plan: str, cycle: str, *, country: str | None, business: bool, code: str | None
) -> tuple[int, str]:
    """A new member checks out on the hosted page: their id and the paid session's id."""
    n = next(_serial)
    email = f"tax{n}@example.com"
    user_id = create_user(app, email=email)
    client = app.test_client()
    AuthActions(app, client).login(email=email)
    token = csrf_token(client, "/pricing")
    started = client.post("/checkout", data={"plan": plan, "cycle": cycle, "csrf_token": token})
    assert started.status_code == 303, started.get_data(as_text=True)[:300]
    path = urlsplit(started.headers["Location"]).path
    if code:
        applied = client.post(
            f"{path}/promotion-code", data={"csrf_token": csrf_token(client, path), "code": code}
        )
        assert applied.status_code == 303, applied.get_data(as_text=True)[:2000]
    if country:
        fields = {"country": country, **ADDRESSES[country]}
        if business:
            fields.update(is_business="y", business_name="Ada Ltd", tax_id=VAT_NUMBERS[country])
        given_details = client.post(
            f"{path}/billing-details", data={"csrf_token": csrf_token(client, path), **fields}
        )
        assert given_details.status_code == 303, given_details.get_data(as_text=True)[:3000]
    card = {"card_number": "4242 4242 4242 4242", "expiry": "12 / 34", "cvc": "123"}
    paid = client.post(path, data={"csrf_token": csrf_token(client, path), **card})
    assert paid.status_code == 303, paid.get_data(as_text=True)[:3000]
    session_id = parse_qs(urlsplit(paid.headers["Location"]).query)["session_id"][0]
    assert client.get(f"/checkout/success?session_id={session_id}").status_code == 200
    return user_id, session_id


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    plan=st.sampled_from(["starter", "professional", "business", "agency"]),
    cycle=st.sampled_from(["monthly", "yearly"]),
    tax_on=st.booleans(),
    country=st.sampled_from(sorted(ADDRESSES)),
    business=st.booleans(),
    percent_off=st.sampled_from([None, 20, 33.3, 100]),
    refund=st.sampled_from([Fraction(0), Fraction(1, 2), Fraction(1)]),
)
# The cases that matter most, always tried: half of a taxed invoice refunded; reverse charge.
@example(
    plan="professional",
    cycle="monthly",
    tax_on=True,
    country="DE",
    business=False,
    percent_off=20,
    refund=Fraction(1, 2),
)
@example(
    plan="starter",
    cycle="yearly",
    tax_on=True,
    country="FR",
    business=True,
    percent_off=None,
    refund=Fraction(1, 2),
)
def test_tax_is_charged_on_top_and_never_changes_credits(
    app: Flask,
    plan: str,
    cycle: str,
    tax_on: bool,
    country: str,
    business: bool,
    percent_off: float | None,
    refund: Fraction,
) -> None:
    business = business and country in VAT_NUMBERS
    set_automatic_tax(app, tax_on)
    code = None
    if percent_off is not None:
        code = f"TAXCODE{next(_serial)}"
        with app.app_context():
            coupon = get_gateway().create_coupon(percent_off=percent_off, duration="once")
            get_gateway().create_promotion_code(coupon_id=coupon.id, code=code)
    user_id, session_id = checkout(
        app, plan, cycle, country=country if tax_on else None, business=business, code=code
    )
    with app.app_context():
        gateway = get_gateway()
        session = gateway.retrieve_checkout_session(session_id)
        invoice = gateway.retrieve_invoice(session.invoice)
        catalog_plan = get_catalog().plan(plan)
        discount = sum(d.amount for d in invoice.total_discount_amounts or [])
        tax = sum(t.amount for t in invoice.total_taxes or [])
        # Charged: the price, less the discount, plus the tax of the customer's country.
        assert invoice.subtotal == catalog_plan.price(cycle).amount_cents
        assert invoice.total == invoice.subtotal - discount + tax
        assert tax == (
            expected_tax(country, business, invoice.subtotal - discount) if tax_on else 0
        )
        assert invoice.amount_paid == invoice.total
        assert session.amount_total == invoice.total  # what the page showed is what was charged
        # Granted: the plan's credits, whatever the tax.
        assert billing.credit_summary(user_id).balance == catalog_plan.monthly_credits
        if refund and invoice.amount_paid:
            intent = gateway.invoice_payments(invoice.id)[0].payment.payment_intent
            back = int(invoice.amount_paid * refund)
            gateway.create_refund(
                payment_intent_id=intent,
                reason="requested_by_customer",
                metadata={},
                idempotency_key=f"tax-refund-{session_id}",
                amount=back,
            )
            # Taken back: in proportion to what was paid, tax included.
            kept = Fraction(invoice.amount_paid - back, invoice.amount_paid)
            assert credits_for_invoice(invoice.id) == floor(kept * catalog_plan.monthly_credits)
            assert billing.credit_summary(user_id).balance == floor(
                kept * catalog_plan.monthly_credits
            )


def test_a_full_refund_of_a_taxed_invoice_takes_all_its_credits(app: Flask) -> None:
    user_id, session_id = checkout(
        app, "professional", "monthly", country="DE", business=False, code=None
    )
    with app.app_context():
        gateway = get_gateway()
        invoice = gateway.retrieve_invoice(gateway.retrieve_checkout_session(session_id).invoice)
        assert (invoice.subtotal, invoice.total) == (1299, 1299 + 247)  # 19% of 12.99 = 2.4681
        assert billing.credit_summary(user_id).balance == 3000
        intent = gateway.invoice_payments(invoice.id)[0].payment.payment_intent
        # The pre-tax amount back is not all the money back: most credits stay taken…
        gateway.create_refund(
            payment_intent_id=intent,
            reason="requested_by_customer",
            metadata={},
            idempotency_key="pre-tax",
            amount=1299,
        )
        assert credits_for_invoice(invoice.id) == floor(Fraction(247, 1546) * 3000)
        # …and the rest, the tax, takes back the rest.
        gateway.create_refund(
            payment_intent_id=intent,
            reason="requested_by_customer",
            metadata={},
            idempotency_key="the-tax",
            amount=247,
        )
        assert credits_for_invoice(invoice.id) == 0
        assert billing.credit_summary(user_id).balance == 0


def test_a_credit_note_refunding_a_taxed_line_takes_the_credits_back(app: Flask) -> None:
    """Credit notes measure what they give back against the line plus its tax."""
    user_id, session_id = checkout(
        app, "starter", "monthly", country="FR", business=False, code=None
    )
    with app.app_context():
        gateway = get_gateway()
        invoice = gateway.retrieve_invoice(gateway.retrieve_checkout_session(session_id).invoice)
        assert invoice.total == 499 + 100
        line = gateway.invoice_lines(invoice)[0]
        gateway.client.v1.credit_notes.create(
            params={
                "invoice": invoice.id,
                "lines": [
                    {"type": "invoice_line_item", "invoice_line_item": line.id, "amount": 499}
                ],
                "refund_amount": 599,
            }
        )
        assert credits_for_invoice(invoice.id) == 0
        assert billing.credit_summary(user_id).balance == 0


def test_billing_history_shows_the_tax(app: Flask) -> None:
    """The account page and the API show the tax of an invoice taxed in the Netherlands."""
    _user_id, _session_id = checkout(
        app, "starter", "monthly", country="NL", business=False, code=None
    )
    email = f"tax{next(_serial) - 1}@example.com"
    client = app.test_client()
    AuthActions(app, client).login(email=email)
    page = client.get("/account").get_data(as_text=True)
    assert 'data-testid="invoice-tax">$1.05<' in page  # 21% of 4.99 = 104.79 cents
    assert 'data-testid="invoice-amount">$6.04<' in page
    token = issue_token(client, email)
    listed = client.get("/api/v1/billing/invoices", headers=bearer(token))
    [invoice] = listed.get_json()["invoices"]
    assert (invoice["taxCents"], invoice["totalCents"], invoice["subtotalCents"]) == (105, 604, 499)
