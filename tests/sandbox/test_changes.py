"""Plan changes through the API, as a Dashboard user or our own code makes them: prorations,
billing-cycle resets and payment behaviours (docs.stripe.com/billing/subscriptions/prorations,
…/change-price, …/pending-updates)."""

from __future__ import annotations

import pytest
import stripe
from flask import Flask

from tests.sandbox.helpers import advance, event_types, events_of, subscribe, update_card
from webapp.stripe_gateway import StripeGateway

FAILS_OFF_SESSION = "4000000000000341"


def v1(gateway: StripeGateway):
    return gateway.client.v1


def item_of(sub):
    return sub["items"].data[0]


def switch(gateway: StripeGateway, sub, lookup_key: str, **params):
    price = gateway.price_for(lookup_key)
    return v1(gateway).subscriptions.update(
        sub.id, params={"items": [{"id": item_of(sub).id, "price": price.id}], **params}
    )


def halfway(sub) -> tuple[int, int, int]:
    item = item_of(sub)
    start, end = item.current_period_start, item.current_period_end
    return start, end, start + (end - start) // 2


def test_always_invoice_bills_the_prorations_now(app: Flask, gateway: StripeGateway):
    sub = subscribe(app, gateway)
    start, end, when = halfway(sub)
    updated = switch(
        gateway, sub, "business_monthly", proration_behavior="always_invoice", proration_date=when
    )
    assert updated.latest_invoice != sub.latest_invoice
    invoice = gateway.retrieve_invoice(updated.latest_invoice)
    assert invoice.billing_reason == "subscription_update" and invoice.status == "paid"
    credit = -round(499 * (end - when) / (end - start))
    charge = round(3999 * (end - when) / (end - start))
    assert [line.amount for line in invoice.lines.data] == [credit, charge]
    for line in invoice.lines.data:
        assert line.parent.subscription_item_details.proration is True
        assert (line.period.start, line.period.end) == (when, end)
        assert line.discountable is False
    assert invoice.amount_paid == credit + charge
    assert item_of(updated).current_period_end == end  # the period stays
    assert item_of(updated).price.id == gateway.price_for("business_monthly").id


def test_create_prorations_wait_for_the_next_invoice(app, gateway):
    sub = subscribe(app, gateway)
    updated = switch(gateway, sub, "business_monthly")  # the default behaviour
    assert updated.latest_invoice == sub.latest_invoice
    advance(app, days=32)
    invoice = gateway.retrieve_invoice(gateway.retrieve_subscription(sub.id).latest_invoice)
    prorations = [
        line for line in invoice.lines.data if line.parent.subscription_item_details.proration
    ]
    assert len(prorations) == 2 and invoice.lines.data[:2] == prorations  # pending items first
    assert invoice.lines.data[2].amount == 3999
    assert invoice.amount_paid == sum(line.amount for line in invoice.lines.data)


def test_proration_none_changes_the_price_only(app, gateway):
    sub = subscribe(app, gateway)
    switch(gateway, sub, "business_monthly", proration_behavior="none")
    advance(app, days=32)
    invoice = gateway.retrieve_invoice(gateway.retrieve_subscription(sub.id).latest_invoice)
    assert [line.amount for line in invoice.lines.data] == [3999]


@pytest.mark.parametrize("anchor", [{"billing_cycle_anchor": {"type": "now"}}, {}])
def test_an_interval_change_restarts_the_period_and_bills_now(app, gateway, anchor):
    sub = subscribe(app, gateway)
    advance(app, days=10)
    updated = switch(
        gateway, sub, "starter_yearly", proration_behavior="create_prorations", **anchor
    )
    item = item_of(updated)
    assert item.price.recurring.interval == "year"
    assert item.current_period_start == updated.billing_cycle_anchor > sub.billing_cycle_anchor
    assert item.current_period_end - item.current_period_start >= 365 * 86400
    invoice = gateway.retrieve_invoice(updated.latest_invoice)
    credit, full = invoice.lines.data
    assert credit.amount < 0 and credit.parent.subscription_item_details.proration is True
    assert full.amount == 4990 and full.parent.subscription_item_details.proration is False
    assert full.period.start == item.current_period_start
    assert invoice.billing_reason == "subscription_update" and invoice.status == "paid"


def test_resetting_the_anchor_on_the_same_price_bills_a_new_period(app, gateway):
    sub = subscribe(app, gateway)
    advance(app, days=5)
    updated = v1(gateway).subscriptions.update(
        sub.id, params={"billing_cycle_anchor": {"type": "now"}, "proration_behavior": "none"}
    )
    invoice = gateway.retrieve_invoice(updated.latest_invoice)
    assert [line.amount for line in invoice.lines.data] == [499]
    assert item_of(updated).current_period_start == updated.billing_cycle_anchor


def test_update_parameters_are_checked_like_stripe(app, gateway):
    sub = subscribe(app, gateway)
    price = gateway.price_for("business_monthly")
    item = {"id": item_of(sub).id, "price": price.id}
    cases = [
        ({"proration_behavior": "sometimes"}, "proration_behavior"),
        ({"payment_behavior": "hope"}, "payment_behavior"),
        ({"billing_cycle_anchor": "now"}, "billing_cycle_anchor"),  # the pre-endive string
        ({"billing_cycle_anchor": {"type": "later"}}, "billing_cycle_anchor[type]"),
        ({"proration_date": sub.created - 86400}, "proration_date"),
        ({"items": [{"id": "si_nope", "price": price.id}]}, "items[0][id]"),
    ]
    for params, param in cases:
        with pytest.raises(stripe.InvalidRequestError) as refused:
            v1(gateway).subscriptions.update(sub.id, params={"items": [item], **params})
        assert refused.value.param == param, params
    v1(gateway).prices.update(price.id, params={"active": False})
    with pytest.raises(stripe.InvalidRequestError, match="inactive"):
        v1(gateway).subscriptions.update(sub.id, params={"items": [item]})


# --- payment behaviours ---------------------------------------------------------------------


def failing_upgrade(gateway: StripeGateway, sub, payment_behavior: str):
    return switch(
        gateway,
        sub,
        "business_monthly",
        proration_behavior="always_invoice",
        payment_behavior=payment_behavior,
        off_session=True,  # card 0341 is declined off-session
    )


def test_allow_incomplete_applies_the_change_and_goes_past_due(app, gateway):
    sub = subscribe(app, gateway, card=FAILS_OFF_SESSION)
    updated = failing_upgrade(gateway, sub, "allow_incomplete")
    assert updated.status == "past_due"
    assert item_of(updated).price.id == gateway.price_for("business_monthly").id
    invoice = gateway.retrieve_invoice(updated.latest_invoice)
    assert invoice.status == "open" and invoice.billing_reason == "subscription_update"
    assert "invoice.payment_failed" in event_types(gateway)


def test_error_if_incomplete_answers_402_and_changes_nothing(app, gateway):
    sub = subscribe(app, gateway, card=FAILS_OFF_SESSION)
    events_before = len(event_types(gateway))
    with pytest.raises(stripe.CardError) as declined:
        failing_upgrade(gateway, sub, "error_if_incomplete")
    assert declined.value.http_status == 402 and declined.value.code == "card_declined"
    unchanged = gateway.retrieve_subscription(sub.id)
    assert unchanged.status == "active" and unchanged.latest_invoice == sub.latest_invoice
    assert item_of(unchanged).price.id == item_of(sub).price.id
    assert len(event_types(gateway)) == events_before


def test_pending_if_incomplete_waits_for_the_payment(app, gateway):
    sub = subscribe(app, gateway, card=FAILS_OFF_SESSION)
    business = gateway.price_for("business_monthly")
    updated = failing_upgrade(gateway, sub, "pending_if_incomplete")
    assert updated.status == "active" and item_of(updated).price.id == item_of(sub).price.id
    pending = updated.pending_update
    assert pending.subscription_items[0].price.id == business.id
    assert pending.expires_at <= updated.created + 32 * 86400
    invoice_id = updated.latest_invoice
    assert gateway.retrieve_invoice(invoice_id).status == "open"

    update_card(app, gateway, sub.customer)  # the portal pays the open invoice
    applied = gateway.retrieve_subscription(sub.id)
    assert applied.pending_update is None and item_of(applied).price.id == business.id
    assert (
        events_of(gateway, "customer.subscription.pending_update_applied")[0].data.object.id
        == sub.id
    )


def test_an_unpaid_pending_update_expires(app, gateway):
    sub = subscribe(app, gateway, card=FAILS_OFF_SESSION)
    updated = failing_upgrade(gateway, sub, "pending_if_incomplete")
    advance(app, days=1)
    expired = gateway.retrieve_subscription(sub.id)
    assert expired.pending_update is None and item_of(expired).price.id == item_of(sub).price.id
    assert gateway.retrieve_invoice(updated.latest_invoice).status == "void"
    assert "customer.subscription.pending_update_expired" in event_types(gateway)


def test_pending_updates_take_only_what_pending_updates_support(app, gateway):
    sub = subscribe(app, gateway)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        switch(
            gateway,
            sub,
            "business_monthly",
            payment_behavior="pending_if_incomplete",
            metadata={"a": "b"},
        )
    assert refused.value.param == "metadata"


def test_default_incomplete_waits_for_confirmation(app, gateway):
    sub = subscribe(app, gateway)
    updated = failing_upgrade(gateway, sub, "default_incomplete")
    assert updated.status == "past_due"
    assert item_of(updated).price.id == gateway.price_for("business_monthly").id
    invoice = v1(gateway).invoices.retrieve(
        updated.latest_invoice, params={"expand": ["payments.data.payment.payment_intent"]}
    )
    assert invoice.status == "open" and invoice.attempt_count == 0
    assert invoice.payments.data[0].payment.payment_intent.latest_charge is None
