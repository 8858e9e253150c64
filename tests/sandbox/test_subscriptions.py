"""Subscriptions as Stripe shows them: the live Price on items, invoice lines, billing mode,
scheduled cancellations (`cancel_at`) and immediate ones (`DELETE`)."""

from __future__ import annotations

import pytest
import stripe
from flask import Flask

from tests.sandbox.helpers import (
    advance,
    client_of,
    event_types,
    events_of,
    pay,
    raw,
    subscribe,
)
from webapp.stripe_gateway import StripeGateway


def v1(gateway: StripeGateway):
    return gateway.client.v1


def item_of(sub):
    return sub["items"].data[0]


# --- the live Price ---------------------------------------------------------------------------


def test_items_show_the_price_as_it_is_now(app: Flask, gateway: StripeGateway):
    sub = subscribe(app, gateway)
    price = item_of(sub).price
    assert price.active is True and price.lookup_key == "starter_monthly"
    v1(gateway).prices.update(price.id, params={"metadata": {"note": "legacy"}})
    replacement = v1(gateway).prices.create(
        params={
            "product": price.product,
            "unit_amount": 599,
            "currency": "usd",
            "recurring": {"interval": "month"},
            "lookup_key": "starter_monthly",
            "transfer_lookup_key": True,
        }
    )
    v1(gateway).prices.update(price.id, params={"active": False})

    item = item_of(gateway.retrieve_subscription(sub.id))
    assert item.price.id == price.id and item.price.active is False
    assert item.price.lookup_key is None and item.price.metadata.note == "legacy"
    assert item.plan.id == price.id and item.plan.active is False
    assert item.plan.metadata.note == "legacy"
    listed = v1(gateway).subscriptions.list(params={"customer": sub.customer}).data[0]
    assert item_of(listed).price.active is False
    assert replacement.lookup_key == "starter_monthly"

    # An event shows the price as it was when the event was made.
    gateway.update_subscription(sub.id, metadata={"touched": "1"})
    event = events_of(gateway, "customer.subscription.updated")[0]
    assert item_of(event.data.object).price.active is False


def test_price_changes_show_in_previous_attributes_as_prices(app, gateway):
    sub = subscribe(app, gateway)
    bigger = gateway.price_for("business_monthly")
    gateway.update_subscription(
        sub.id, items=[{"id": item_of(sub).id, "price": bigger.id}], proration_behavior="none"
    )
    event = events_of(gateway, "customer.subscription.updated")[0]
    assert item_of(event.data.object).price.id == bigger.id
    assert event.data.previous_attributes["items"].data[0].price.id == item_of(sub).price.id


# --- invoice lines --------------------------------------------------------------------------


def test_subscription_lines_carry_the_subscription_s_current_metadata(app, gateway):
    sub = subscribe(app, gateway)
    invoice = raw(gateway.retrieve_invoice(sub.latest_invoice))
    line = invoice["lines"]["data"][0]
    assert line["metadata"] == sub.metadata.to_dict() != {}
    assert line["subscription"] is None
    details = line["parent"]["subscription_item_details"]
    assert details["subscription"] == sub.id and details["proration"] is False
    assert details["subscription_item"] == item_of(sub).id
    assert line["pricing"]["price_details"]["price"] == item_of(sub).price.id

    gateway.update_subscription(sub.id, metadata={"plan": "changed"})
    again = raw(gateway.retrieve_invoice(sub.latest_invoice))
    assert again["lines"]["data"][0]["metadata"]["plan"] == "changed"
    # The invoice's own copy is a snapshot taken when it was made.
    assert (
        again["parent"]["subscription_details"]["metadata"]
        == invoice["parent"]["subscription_details"]["metadata"]
    )


def test_a_line_s_price_expands_on_request(app, gateway):
    sub = subscribe(app, gateway)
    invoice = v1(gateway).invoices.retrieve(
        sub.latest_invoice, params={"expand": ["lines.data.pricing.price_details.price"]}
    )
    price = invoice.lines.data[0].pricing.price_details.price
    assert price.object == "price" and price.id == item_of(sub).price.id
    lines = v1(gateway).invoices.line_items.list(
        sub.latest_invoice, params={"expand": ["data.pricing.price_details.price"]}
    )
    assert lines.data[0].pricing.price_details.price.object == "price"


def test_invoices_show_ten_lines_and_the_rest_page_through(app, gateway):
    sub = subscribe(app, gateway)
    item_id = item_of(sub).id
    for quantity in (2, 3, 4, 5, 6, 7):  # each change: an unused-time credit and a charge
        gateway.update_subscription(sub.id, items=[{"id": item_id, "quantity": quantity}])
    advance(app, days=32)
    invoice_id = gateway.retrieve_subscription(sub.id).latest_invoice
    invoice = raw(gateway.retrieve_invoice(invoice_id))
    assert len(invoice["lines"]["data"]) == 10 and invoice["lines"]["has_more"] is True
    every = v1(gateway).invoices.line_items.list(invoice_id, params={"limit": 100})
    assert len(every.data) == 13 and every.has_more is False
    assert sum(line.amount for line in every.data) == invoice["total"]
    assert every.data[-1].parent.subscription_item_details.proration is False
    assert every.data[-1].quantity == 7 and every.data[-1].amount == 7 * 499
    first = v1(gateway).invoices.line_items.list(invoice_id, params={"limit": 5})
    rest = v1(gateway).invoices.line_items.list(
        invoice_id, params={"limit": 100, "starting_after": first.data[-1].id}
    )
    assert [line.id for line in first.data + rest.data] == [line.id for line in every.data]
    assert first.has_more is True
    prorations = [line for line in every.data if line.parent.subscription_item_details.proration]
    assert all(
        line.parent.subscription_item_details.invoice_item.startswith("ii_") for line in prorations
    )
    assert all(line.metadata.to_dict() == {} for line in prorations)


# --- billing mode ---------------------------------------------------------------------------


def _checkout(gateway: StripeGateway, **subscription_data):
    price = gateway.price_for("starter_monthly")
    return v1(gateway).checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer_email": "mode@example.com",
            "line_items": [{"price": price.id, "quantity": 1}],
            "success_url": "http://localhost/ok",
            "subscription_data": subscription_data,
        }
    )


@pytest.mark.parametrize(("requested", "expected"), [(None, "flexible"), ("classic", "classic")])
def test_checkout_subscriptions_are_flexible_unless_classic_is_asked(
    app, gateway, requested, expected
):
    data = {"billing_mode": {"type": requested}} if requested else {}
    session = _checkout(gateway, **data)
    assert pay(client_of(app), session.url).status_code == 303
    sub = gateway.retrieve_subscription(gateway.retrieve_checkout_session(session.id).subscription)
    assert sub.billing_mode.type == expected
    if expected == "flexible":
        assert sub.billing_mode.updated_at == sub.created


def test_an_unknown_billing_mode_is_refused(app, gateway):
    with pytest.raises(stripe.InvalidRequestError) as refused:
        _checkout(gateway, billing_mode={"type": "modern"})
    assert refused.value.param == "subscription_data[billing_mode][type]"


# --- scheduled cancellations ----------------------------------------------------------------


def test_cancel_at_period_end_sets_cancel_at_too(app, gateway):
    sub = subscribe(app, gateway)
    end = item_of(sub).current_period_end
    updated = gateway.update_subscription(sub.id, cancel_at_period_end=True)
    assert updated.cancel_at_period_end is True and updated.cancel_at == end
    assert updated.cancellation_details.reason == "cancellation_requested"
    resumed = gateway.update_subscription(sub.id, cancel_at_period_end=False)
    assert resumed.cancel_at is None and resumed.cancel_at_period_end is False


@pytest.mark.parametrize("value", ["min_period_end", "max_period_end"])
def test_cancel_at_period_end_enums_resolve_to_a_timestamp(app, gateway, value):
    sub = subscribe(app, gateway)
    updated = gateway.update_subscription(sub.id, cancel_at=value)
    assert updated.cancel_at == item_of(sub).current_period_end
    assert updated.cancel_at_period_end is False
    cleared = gateway.update_subscription(sub.id, cancel_at="")
    assert cleared.cancel_at is None and cleared.canceled_at is None


def test_cancel_at_and_cancel_at_period_end_together_are_refused(app, gateway):
    sub = subscribe(app, gateway)
    with pytest.raises(stripe.InvalidRequestError, match="only specify one"):
        v1(gateway).subscriptions.update(
            sub.id, params={"cancel_at": "max_period_end", "cancel_at_period_end": True}
        )
    with pytest.raises(stripe.InvalidRequestError) as past:
        v1(gateway).subscriptions.update(sub.id, params={"cancel_at": sub.created - 10})
    assert past.value.param == "cancel_at"


def test_cancel_at_in_the_period_ends_it_then_with_a_prorated_credit(app, gateway):
    sub = subscribe(app, gateway, lookup_key="business_monthly")
    item = item_of(sub)
    start, end = item.current_period_start, item.current_period_end
    cancel_at = start + (end - start) // 2
    gateway.update_subscription(sub.id, cancel_at=cancel_at)
    advance(app, days=10)
    assert gateway.retrieve_subscription(sub.id).status == "active"
    advance(app, days=10)
    ended = gateway.retrieve_subscription(sub.id)
    assert ended.status == "canceled" and ended.ended_at == cancel_at
    assert events_of(gateway, "customer.subscription.deleted")[0].data.object.id == sub.id
    final = gateway.retrieve_invoice(ended.latest_invoice)
    credit = -round(3999 * (end - cancel_at) / (end - start))
    assert [line.amount for line in final.lines.data] == [credit]
    assert final.lines.data[0].period.start == cancel_at
    assert final.amount_due == 0 and final.status == "paid"
    assert v1(gateway).customers.retrieve(sub.customer).balance == credit


def test_cancel_at_in_the_next_period_bills_that_period_only_up_to_it(app, gateway):
    sub = subscribe(app, gateway)
    end = item_of(sub).current_period_end
    cancel_at = end + 10 * 86400
    gateway.update_subscription(sub.id, cancel_at=cancel_at)
    advance(app, days=32)
    renewed = gateway.retrieve_subscription(sub.id)
    assert renewed.status == "active"
    invoice = gateway.retrieve_invoice(renewed.latest_invoice)
    line = invoice.lines.data[0]
    new_end = item_of(renewed).current_period_end
    assert line.period.end == cancel_at
    assert line.amount == round(499 * (cancel_at - end) / (new_end - end))
    advance(app, days=10)
    assert gateway.retrieve_subscription(sub.id).status == "canceled"


# --- immediate cancellation -----------------------------------------------------------------


def test_delete_cancels_now_without_proration_by_default(app, gateway):
    sub = subscribe(app, gateway)
    canceled = v1(gateway).subscriptions.cancel(sub.id)
    assert (
        canceled.status == "canceled"
        and canceled.ended_at
        and canceled.latest_invoice == sub.latest_invoice
    )
    assert v1(gateway).customers.retrieve(sub.customer).balance == 0
    with pytest.raises(stripe.InvalidRequestError):
        v1(gateway).subscriptions.cancel(sub.id)


def test_delete_with_prorate_and_invoice_now_credits_the_unused_time(app, gateway):
    sub = subscribe(app, gateway, lookup_key="business_monthly")
    advance(app, days=10)
    canceled = v1(gateway).subscriptions.cancel(
        sub.id,
        params={
            "prorate": True,
            "invoice_now": True,
            "cancellation_details": {"feedback": "too_expensive", "comment": "pricey"},
        },
    )
    assert canceled.status == "canceled"
    assert canceled.cancellation_details.feedback == "too_expensive"
    final = gateway.retrieve_invoice(canceled.latest_invoice)
    assert final.billing_reason == "subscription_update" and final.total < 0
    line = final.lines.data[0]
    assert line.parent.subscription_item_details.proration is True
    assert line.period.start == canceled.ended_at
    assert final.amount_due == 0 and final.status == "paid"
    assert v1(gateway).customers.retrieve(sub.customer).balance == final.total
    assert "customer.subscription.deleted" in event_types(gateway)


def test_deleting_a_customer_ends_its_subscriptions_and_leaves_a_stub(
    app: Flask, gateway: StripeGateway
):
    sub = subscribe(app, gateway)
    v1(gateway).customers.delete(sub.customer)
    # Stripe's own example of a deleted customer (fixtures3.json `deleted_customer`).
    assert raw(v1(gateway).customers.retrieve(sub.customer)) == {
        "id": sub.customer,
        "object": "customer",
        "deleted": True,
    }
    assert gateway.customer_is_deleted(sub.customer) is True
    assert v1(gateway).subscriptions.retrieve(sub.id).status == "canceled"
    assert event_types(gateway)[-2:] == ["customer.subscription.deleted", "customer.deleted"]
    [deleted] = events_of(gateway, "customer.deleted")
    assert deleted.data.object.email  # the event shows the customer as it was
