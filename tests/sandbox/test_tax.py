"""Stripe Tax in the sandbox, through the real SDK and the hosted Checkout page: the session's
tax options and what Stripe refuses, the billing address and VAT number typed on the page, tax
on the invoices (checkout, renewals, discounts, reverse charge), tax ids on the customer, and
credit notes that give tax back in proportion."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
import stripe
from flask import Flask

from tests.sandbox import helpers
from tests.sandbox.helpers import advance, client_of, events_of, form_token, pay, raw
from webapp.checkout_options import CheckoutOptions
from webapp.stripe_gateway import InvalidRequest, StripeGateway

STARTER = 499  # starter_monthly, cents
TAX_ON = CheckoutOptions(
    allow_promotion_codes=True, automatic_tax=True, tax_id_collection=True
).session_params()
BERLIN = {"country": "DE", "line1": "Unter den Linden 1", "city": "Berlin", "postal_code": "10117"}


def new_checkout(gateway: StripeGateway, key: str = "1", **kwargs: Any) -> Any:
    kwargs.setdefault("option_params", TAX_ON)
    return helpers.new_checkout(gateway, key=key, email=f"{key}@example.com", **kwargs)


def billing_details(app: Flask, session_url: str, **fields: str):
    """Fill in the page's billing address (and VAT number) and press Continue."""
    client = client_of(app)
    path = urlsplit(session_url).path
    token, html = form_token(client, path)
    assert 'data-testid="billing-details"' in html
    return client.post(f"{path}/billing-details", data={"csrf_token": token, **fields})


def checkout_with(
    app: Flask, gateway: StripeGateway, key: str = "1", vat: str | None = None, **address: str
) -> Any:
    """Pay a taxed checkout from this address: the paid session."""
    session = new_checkout(gateway, key)
    fields = {**BERLIN, **address}
    if vat:
        fields.update(is_business="y", business_name="Ada GmbH", tax_id=vat)
    continued = billing_details(app, session.url, **fields)
    assert continued.status_code == 303, continued.get_data(as_text=True)[:3000]
    paid = pay(client_of(app), session.url)
    assert paid.status_code == 303, paid.get_data(as_text=True)[:3000]
    return gateway.retrieve_checkout_session(session.id)


def first_invoice(gateway: StripeGateway, session: Any) -> dict[str, Any]:
    return raw(gateway.retrieve_invoice(session.invoice))


# --- the session ----------------------------------------------------------------------------


def test_a_taxed_session_shows_its_options(gateway: StripeGateway) -> None:
    session = raw(new_checkout(gateway))
    assert session["automatic_tax"]["enabled"] is True
    assert session["automatic_tax"]["status"] == "requires_location_inputs"  # no address yet
    assert session["billing_address_collection"] == "required"
    assert session["tax_id_collection"] == {"enabled": True, "required": "never"}
    assert "customer_update" not in session  # a request parameter, not a field of the object


@pytest.mark.parametrize(
    ("params", "words"),
    [
        # An existing customer with no address: Stripe needs customer_update[address]=auto.
        ({"automatic_tax": {"enabled": True}}, "requires a valid address on the Customer"),
        (
            {"tax_id_collection": {"enabled": True}, "customer_update": {"address": "auto"}},
            "customer_update[name]",
        ),
        ({"customer_update": {"address": "sometimes"}}, "must be one of auto or never"),
    ],
)
def test_stripe_refuses_tax_options_it_cannot_honour(
    gateway: StripeGateway, params: dict[str, Any], words: str
) -> None:
    customer = gateway.create_customer(email="t@example.com", user_id=9, idempotency_key="t")
    price = gateway.price_for("starter_monthly")
    with pytest.raises(stripe.InvalidRequestError, match=words.replace("[", r"\[")):
        gateway.client.v1.checkout.sessions.create(
            params={
                "mode": "subscription",
                "customer": customer.id,
                "line_items": [{"price": price.id, "quantity": 1}],
                "success_url": "http://localhost/ok",
                **params,
            }
        )


def test_customer_update_needs_a_customer(gateway: StripeGateway) -> None:
    price = gateway.price_for("starter_monthly")
    with pytest.raises(stripe.InvalidRequestError, match="can only be used with `customer`"):
        gateway.client.v1.checkout.sessions.create(
            params={
                "mode": "subscription",
                "customer_email": "x@example.com",
                "line_items": [{"price": price.id, "quantity": 1}],
                "success_url": "http://localhost/ok",
                "customer_update": {"address": "auto"},
            }
        )


# --- the hosted page ---------------------------------------------------------------------------


def test_the_page_asks_for_the_address_before_the_card(app: Flask, gateway: StripeGateway) -> None:
    session = new_checkout(gateway)
    path = urlsplit(session.url).path
    _token, html = form_token(client_of(app), path)
    assert "Billing address" in html and "VAT number" in html
    assert 'name="card_number"' not in html  # the card form comes once the tax is known
    refused = pay(client_of(app), session.url)
    assert refused.status_code == 402
    assert "Enter your billing address." in refused.get_data(as_text=True)


def test_the_tax_and_total_show_before_paying(app: Flask, gateway: StripeGateway) -> None:
    session = new_checkout(gateway)
    assert billing_details(app, session.url, **BERLIN).status_code == 303
    _token, html = form_token(client_of(app), urlsplit(session.url).path)
    assert "VAT 19%" in html
    assert 'data-testid="amount-tax">$0.95<' in html  # 19% of $4.99 = 94.81 cents
    assert 'data-testid="amount-total">$5.94<' in html
    assert 'name="card_number"' in html
    shown = raw(gateway.retrieve_checkout_session(session.id))
    assert shown["total_details"]["amount_tax"] == 95
    assert shown["amount_total"] == 594
    assert shown["automatic_tax"]["status"] == "complete"


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({**BERLIN, "country": ""}, "Choose your country."),
        ({**BERLIN, "city": ""}, "Enter your city."),
        (
            {**BERLIN, "is_business": "y", "business_name": "Ada GmbH", "tax_id": "DE12"},
            "not valid for its country",
        ),
        ({**BERLIN, "is_business": "y", "tax_id": "DE123456789"}, "Enter the business name."),
    ],
)
def test_bad_billing_details_are_refused_clearly(
    app: Flask, gateway: StripeGateway, fields: dict[str, str], words: str
) -> None:
    session = new_checkout(gateway)
    refused = billing_details(app, session.url, **fields)
    assert refused.status_code == 400
    assert words in refused.get_data(as_text=True)
    assert raw(gateway.retrieve_checkout_session(session.id))["total_details"]["amount_tax"] == 0


# --- paying: the customer and the invoice --------------------------------------------------------


def test_paying_saves_the_address_and_vat_number_and_taxes_the_invoice(
    app: Flask, gateway: StripeGateway
) -> None:
    session = checkout_with(app, gateway, vat="DE 123.456.789")
    customer = raw(gateway.retrieve_customer_details(session.customer))
    assert customer["address"]["country"] == "DE" and customer["address"]["city"] == "Berlin"
    assert customer["name"] == "Ada GmbH"  # customer_update[name]=auto: the business name
    [tax_id] = customer["tax_ids"]["data"]
    assert (tax_id["type"], tax_id["value"], tax_id["country"]) == ("eu_vat", "DE123456789", "DE")
    assert set(tax_id) >= {"owner", "verification", "created", "livemode"}
    assert events_of(gateway, "customer.tax_id.created")
    assert session.customer_details.address.country == "DE"
    assert [(t.type, t.value) for t in session.customer_details.tax_ids] == [
        ("eu_vat", "DE123456789")
    ]

    invoice = first_invoice(gateway, session)
    # A German business buying from a German seller: German VAT, no reverse charge.
    assert invoice["subtotal"] == STARTER
    assert invoice["total_excluding_tax"] == STARTER
    assert invoice["total"] == invoice["amount_paid"] == STARTER + 95
    [tax] = invoice["total_taxes"]
    assert tax["amount"] == 95 and tax["taxable_amount"] == STARTER
    assert tax["taxability_reason"] == "standard_rated" and tax["tax_behavior"] == "exclusive"
    rate = gateway.client.v1.tax_rates.retrieve(tax["tax_rate_details"]["tax_rate"])
    assert rate.percentage == 19 and rate.country == "DE"
    assert invoice["automatic_tax"]["enabled"] is True
    assert invoice["automatic_tax"]["status"] == "complete"
    assert invoice["customer_address"]["country"] == "DE"
    assert invoice["customer_tax_ids"] == [{"type": "eu_vat", "value": "DE123456789"}]
    [line] = invoice["lines"]["data"]
    assert line["taxes"][0]["amount"] == 95
    sub = gateway.retrieve_subscription(session.subscription)
    assert sub.automatic_tax.enabled is True


def test_reverse_charge_for_a_business_in_another_eu_country(
    app: Flask, gateway: StripeGateway
) -> None:
    paris = {"country": "FR", "city": "Paris", "postal_code": "75001", "line1": "1 rue de Rivoli"}
    session = checkout_with(app, gateway, vat="FRAB123456789", **paris)
    invoice = first_invoice(gateway, session)
    [tax] = invoice["total_taxes"]
    assert (tax["amount"], tax["taxability_reason"]) == (0, "reverse_charge")
    assert invoice["total"] == STARTER


def test_a_consumer_in_france_pays_french_vat(app: Flask, gateway: StripeGateway) -> None:
    paris = {"country": "FR", "city": "Paris", "postal_code": "75001", "line1": "1 rue de Rivoli"}
    invoice = first_invoice(gateway, checkout_with(app, gateway, **paris))
    assert invoice["total_taxes"][0]["amount"] == 100  # 20% of 499 = 99.8
    assert invoice["total"] == STARTER + 100


def test_no_tax_where_the_account_does_not_collect(app: Flask, gateway: StripeGateway) -> None:
    ny = {"country": "US", "city": "New York", "postal_code": "10001", "line1": "1 Main St"}
    invoice = first_invoice(gateway, checkout_with(app, gateway, state="NY", **ny))
    [tax] = invoice["total_taxes"]
    assert (tax["amount"], tax["taxability_reason"]) == (0, "not_collecting")
    assert invoice["total"] == STARTER


def test_discounts_come_off_before_tax(app: Flask, gateway: StripeGateway) -> None:
    coupon = gateway.create_coupon(percent_off=20, duration="once")
    gateway.create_promotion_code(coupon_id=coupon.id, code="TAX20")
    session = new_checkout(gateway)
    client = client_of(app)
    path = urlsplit(session.url).path
    token, _ = form_token(client, path)
    client.post(f"{path}/promotion-code", data={"csrf_token": token, "code": "TAX20"})
    billing_details(app, session.url, **BERLIN)
    _token, html = form_token(client, path)
    # 499 - 100 = 399; 19% of 399 = 75.81 → 76; total 475.
    assert 'data-testid="amount-tax">$0.76<' in html
    assert 'data-testid="amount-total">$4.75<' in html
    assert pay(client, session.url).status_code == 303
    invoice = first_invoice(gateway, gateway.retrieve_checkout_session(session.id))
    discount = sum(d["amount"] for d in invoice["total_discount_amounts"])
    tax = sum(t["amount"] for t in invoice["total_taxes"])
    assert (invoice["subtotal"], discount, tax, invoice["total"]) == (499, 100, 76, 475)
    assert invoice["total"] == invoice["subtotal"] - discount + tax


def test_renewals_are_taxed_where_the_customer_is_then(app: Flask, gateway: StripeGateway) -> None:
    session = checkout_with(app, gateway)
    amsterdam = {"country": "NL", "city": "Amsterdam", "postal_code": "1012", "line1": "Dam 1"}
    gateway.update_customer_details(session.customer, name=None, address=amsterdam)
    advance(app, days=32)
    invoices = sorted(
        gateway.list_invoices(session.customer, subscription_id=session.subscription),
        key=lambda invoice: invoice.created,
    )
    renewal = raw(gateway.retrieve_invoice(invoices[-1].id))
    assert renewal["billing_reason"] == "subscription_cycle"
    assert renewal["customer_address"]["country"] == "NL"
    assert renewal["total_taxes"][0]["amount"] == 105  # 21% of 499 = 104.79
    assert renewal["total"] == renewal["amount_paid"] == STARTER + 105


# --- tax ids -------------------------------------------------------------------------------------


def test_tax_ids_are_created_listed_and_deleted(gateway: StripeGateway) -> None:
    customer = gateway.create_customer(email="t@example.com", user_id=9, idempotency_key="t")
    made = gateway.create_tax_id(customer.id, tax_type="eu_vat", value="nl123456789b01")
    assert (made.value, made.country, made.verification.status) == (
        "NL123456789B01",
        "NL",
        "pending",
    )
    listed = gateway.client.v1.customers.tax_ids.list(customer.id)
    assert [t.id for t in listed.data] == [made.id]
    gateway.delete_tax_id(customer.id, made.id)
    gateway.delete_tax_id(customer.id, made.id)  # already gone: not an error
    assert gateway.client.v1.customers.tax_ids.list(customer.id).data == []
    assert events_of(gateway, "customer.tax_id.deleted")


@pytest.mark.parametrize(
    ("tax_type", "value"), [("eu_vat", "DE12345"), ("eu_vat", "US123456789"), ("gb_vat", "GB1")]
)
def test_a_tax_id_of_the_wrong_format_is_refused(
    gateway: StripeGateway, tax_type: str, value: str
) -> None:
    customer = gateway.create_customer(email="t@example.com", user_id=9, idempotency_key="t")
    with pytest.raises(InvalidRequest) as refused:
        gateway.create_tax_id(customer.id, tax_type=tax_type, value=value)
    assert refused.value.code == "tax_id_invalid"
    assert f"Invalid value for {tax_type}" in str(refused.value)


# --- credit notes give tax back in proportion ---------------------------------------------------


def credit(gateway: StripeGateway, invoice: dict[str, Any], amount: int, refund: int):
    line = invoice["lines"]["data"][0]["id"]
    return gateway.client.v1.credit_notes.create(
        params={
            "invoice": invoice["id"],
            "lines": [{"type": "invoice_line_item", "invoice_line_item": line, "amount": amount}],
            "refund_amount": refund,
        }
    )


def test_credit_notes_give_back_the_tax_on_what_they_credit(
    app: Flask, gateway: StripeGateway
) -> None:
    invoice = first_invoice(gateway, checkout_with(app, gateway))
    # Half the line: half its tax (47.5 → 48), so the note refunds 250 + 48.
    half = credit(gateway, invoice, 250, 298)
    assert (half.subtotal, half.total) == (250, 298)
    assert half.total_taxes[0].amount == 48
    with pytest.raises(stripe.InvalidRequestError, match="must equal the credit note amount"):
        credit(gateway, invoice, 249, 249)  # the tax must be refunded too
    # The rest of the line: the rest of its tax exactly, never more than was charged.
    rest = credit(gateway, invoice, 249, 249 + 47)
    assert rest.total_taxes[0].amount == 47
    refunded = raw(gateway.retrieve_invoice(invoice["id"]))
    assert refunded["post_payment_credit_notes_amount"] == refunded["amount_paid"] == 594
