"""Contract: every object the sandbox returns has Stripe's field names, nesting and types.

Two references: Stripe's own example objects (../shared/stripe/fixtures3.json, or the file named
by STRIPE_FIXTURES) and the installed SDK's classes, whose annotations list the fields of the API
version it pins. Fields we leave out are listed, with the reason, in LEFT_OUT.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import stripe
from flask import Flask

from tests.sandbox.helpers import (
    client_of,
    new_checkout,
    open_portal,
    pay,
    portal_configuration,
    subscribe,
)
from webapp.config import PROJECT_ROOT
from webapp.stripe_gateway import StripeGateway

FIXTURES = Path(
    os.environ.get("STRIPE_FIXTURES") or PROJECT_ROOT.parent / "shared/stripe/fixtures3.json"
)

# Fields of Stripe's examples the sandbox does not return, by object type and dotted path.
LEFT_OUT: dict[str, set[str]] = {
    # The fixture still carries the pre-2025 top-level `subscription`; the pinned API version
    # (and the SDK's Invoice class) moved it to `parent.subscription_details.subscription`.
    "invoice": {"subscription"},
    # Not auto-expanded since 2022-11-15 (docs.stripe.com/changelog/2022-11-15/
    # deprecates-charges-auto-expand): present only with `expand[]=refunds`.
    "charge": {"refunds"},
    # Fields for features the sandbox does not offer (tax ID collection, shipping, crypto…) are
    # returned with neutral values, not left out; nothing else is missing.
}

SDK_CLASSES: dict[str, type] = {
    "product": stripe.Product,
    "price": stripe.Price,
    "plan": stripe.Plan,
    "customer": stripe.Customer,
    "checkout.session": stripe.checkout.Session,
    "billing_portal.session": stripe.billing_portal.Session,
    "subscription": stripe.Subscription,
    "subscription_item": stripe.SubscriptionItem,
    "invoice": stripe.Invoice,
    "line_item": stripe.InvoiceLineItem,
    "event": stripe.Event,
    "payment_method": stripe.PaymentMethod,
    "item": stripe.LineItem,  # a checkout session's line item
    "payment_intent": stripe.PaymentIntent,
    "charge": stripe.Charge,
    "invoice_payment": stripe.InvoicePayment,
    "refund": stripe.Refund,
    "dispute": stripe.Dispute,
    "balance_transaction": stripe.BalanceTransaction,  # as a dispute carries it
    "subscription_schedule": stripe.SubscriptionSchedule,
    "credit_note": stripe.CreditNote,
    "credit_note_line_item": stripe.CreditNoteLineItem,
    "customer_balance_transaction": stripe.CustomerBalanceTransaction,
    "billing_portal.configuration": stripe.billing_portal.Configuration,
}


def sdk_fields(cls: type) -> set[str]:
    fields: set[str] = set()
    for klass in reversed(cls.__mro__):
        fields.update(k for k in getattr(klass, "__annotations__", {}) if k[0].islower())
    return fields


def kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def compare(ours: dict[str, Any], theirs: dict[str, Any], left_out: set[str], path: str = ""):
    """Problems between our object and Stripe's example: missing fields, extra ones, types."""
    problems = []
    for key, example in theirs.items():
        where = f"{path}{key}"
        if key not in ours:
            if where not in left_out:
                problems.append(f"missing {where}")
            continue
        value = ours[key]
        if value is None or example is None:
            continue  # nullable on one side: shapes cannot be compared
        if kind(value) != kind(example):
            # An expandable id (str) may be expanded (dict) on the other side.
            if {kind(value), kind(example)} != {"str", "dict"}:
                problems.append(f"type of {where}: {kind(value)} vs Stripe's {kind(example)}")
            continue
        if isinstance(value, dict) and example and not _free_form(where):
            problems += compare(value, example, left_out, f"{where}.")
    for key in ours:
        if key not in theirs and not path:
            problems.append(f"extra {path}{key} (not in Stripe's example)")
    return problems


def _free_form(where: str) -> bool:
    # Maps whose keys are data, not field names; an event's object is compared on its own type.
    return where.rpartition(".")[2] in ("metadata", "payment_method_options") or where in (
        "data.object",
        "data.previous_attributes",
    )


@pytest.fixture(scope="module")
def examples() -> dict[str, Any]:
    if not FIXTURES.exists():
        pytest.skip(
            f"Stripe's example objects are not at {FIXTURES} (set STRIPE_FIXTURES to the "
            "shared fixtures3.json); the contract cannot be checked without them"
        )
    return json.loads(FIXTURES.read_text())["resources"]


@pytest.fixture
def sandbox_objects(app: Flask, gateway: StripeGateway) -> dict[str, dict[str, Any]]:
    """One raw JSON object of each type, as the sandbox sends it on the wire."""
    session = new_checkout(gateway)
    open_session = json.loads(gateway.retrieve_checkout_session(session.id).last_response.body)
    with_items = gateway.retrieve_checkout_session(session.id, expand=["line_items"])
    item = json.loads(with_items.last_response.body)["line_items"]["data"][0]
    assert pay(client_of(app), session.url).status_code == 303
    done = gateway.retrieve_checkout_session(session.id)
    sub = gateway.retrieve_subscription(done.subscription)
    invoice = json.loads(gateway.retrieve_invoice(sub.latest_invoice).last_response.body)
    subscription = json.loads(sub.last_response.body)
    price = gateway.price_for("starter_monthly")
    events = gateway.client.v1.events.list(params={"limit": 100})
    attached = next(e for e in events.data if e.type == "payment_method.attached")
    configuration = portal_configuration(gateway)
    portal = open_portal(gateway, sub.customer)
    v1 = gateway.client.v1
    payment = v1.invoice_payments.list(params={"invoice": sub.latest_invoice}).data[0]
    pi = v1.payment_intents.retrieve(payment.payment.payment_intent)
    refund = v1.refunds.create(params={"payment_intent": pi.id, "amount": 100})
    line = invoice["lines"]["data"][0]
    note = json.loads(
        v1.credit_notes.create(
            params={
                "invoice": sub.latest_invoice,
                "lines": [
                    {"type": "invoice_line_item", "invoice_line_item": line["id"], "amount": 200}
                ],
                "refund_amount": 100,
                "credit_amount": 100,
            }
        ).last_response.body
    )
    balance_transaction = json.loads(
        v1.customers.balance_transactions.list(sub.customer).last_response.body
    )["data"][0]
    disputed = subscribe(app, gateway, card="4000000000000259", key="2", email="d@example.com")
    disputed_payment = v1.invoice_payments.list(params={"invoice": disputed.latest_invoice})
    disputed_pi = v1.payment_intents.retrieve(disputed_payment.data[0].payment.payment_intent)
    dispute = json.loads(
        v1.disputes.list(params={"payment_intent": disputed_pi.id}).last_response.body
    )["data"][0]
    return {
        "product": json.loads(
            gateway.client.v1.products.retrieve(price.product).last_response.body
        ),
        "price": json.loads(gateway.client.v1.prices.retrieve(price.id).last_response.body),
        "customer": json.loads(
            gateway.client.v1.customers.retrieve(sub.customer).last_response.body
        ),
        "checkout.session": open_session,
        "billing_portal.session": json.loads(portal.last_response.body),
        "billing_portal.configuration": json.loads(configuration.last_response.body),
        "subscription": subscription,
        "subscription_item": subscription["items"]["data"][0],
        "plan": subscription["items"]["data"][0]["plan"],
        "invoice": invoice,
        "line_item": invoice["lines"]["data"][0],
        "event": json.loads(gateway.client.v1.events.retrieve(attached.id).last_response.body),
        "item": item,
        "payment_method": json.loads(json.dumps(attached.data.object.to_dict())),
        "payment_intent": json.loads(pi.last_response.body),
        "charge": json.loads(v1.charges.retrieve(pi.latest_charge).last_response.body),
        "invoice_payment": json.loads(json.dumps(payment.to_dict())),
        "refund": json.loads(refund.last_response.body),
        "dispute": dispute,
        "balance_transaction": dispute["balance_transactions"][0],
        "credit_note": note,
        "credit_note_line_item": note["lines"]["data"][0],
        "customer_balance_transaction": balance_transaction,
        "subscription_schedule": json.loads(
            v1.subscription_schedules.create(
                params={"from_subscription": sub.id}
            ).last_response.body
        ),
    }


@pytest.mark.parametrize("object_type", sorted(SDK_CLASSES))
def test_fields_match_stripe_s_example(object_type, examples, sandbox_objects):
    problems = compare(
        sandbox_objects[object_type], examples[object_type], LEFT_OUT.get(object_type, set())
    )
    assert problems == []


def test_the_comparison_sees_missing_extra_and_mistyped_fields():
    theirs = {"id": "x", "nested": {"a": 1, "b": None}, "n": 1}
    ours = {"id": "x", "nested": {"b": "s"}, "n": "1", "more": True}
    assert sorted(compare(ours, theirs, set())) == [
        "extra more (not in Stripe's example)",
        "missing nested.a",
        "type of n: str vs Stripe's number",
    ]
    assert compare({"id": "x"}, {"id": "x", "gone": 1}, {"gone"}) == []


@pytest.mark.parametrize("object_type", sorted(SDK_CLASSES))
def test_every_field_is_known_to_the_sdk(object_type, sandbox_objects):
    unknown = set(sandbox_objects[object_type]) - sdk_fields(SDK_CLASSES[object_type])
    assert unknown == set()


def test_objects_name_their_type(sandbox_objects):
    for object_type, obj in sandbox_objects.items():
        assert obj["object"] == object_type
