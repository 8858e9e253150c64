"""`POST /v1/invoices/create_preview`: the invoice a change would make, before making it."""

from __future__ import annotations

import pytest
import stripe
from flask import Flask

from tests.sandbox.helpers import advance, event_types, raw, subscribe
from webapp.stripe_gateway import StripeGateway


def v1(gateway: StripeGateway):
    return gateway.client.v1


def item_of(sub):
    return sub["items"].data[0]


def preview(gateway: StripeGateway, sub, **details):
    return v1(gateway).invoices.create_preview(
        params={"customer": sub.customer, "subscription": sub.id, "subscription_details": details}
    )


def test_previewing_an_upgrade_matches_what_the_upgrade_bills(app: Flask, gateway):
    sub = subscribe(app, gateway)
    item = item_of(sub)
    when = item.current_period_start + 10 * 86400
    business = gateway.price_for("business_monthly")
    events_before = event_types(gateway)
    shown = preview(
        gateway,
        sub,
        items=[{"id": item.id, "price": business.id}],
        proration_date=when,
    )
    assert shown.id.startswith("upcoming_in_") and shown.billing_reason == "upcoming"
    assert shown.status == "draft" and shown.number is None
    assert shown.parent.subscription_details.subscription_proration_date == when
    prorations = [
        line for line in shown.lines.data if line.parent.subscription_item_details.proration
    ]
    assert len(prorations) == 2
    # create_prorations (the default): the next invoice, prorations first, then the period.
    assert shown.lines.data[-1].amount == 3999
    assert shown.lines.data[-1].period.start == item.current_period_end
    assert shown.total == sum(line.amount for line in shown.lines.data) == shown.amount_due
    assert event_types(gateway) == events_before  # nothing happened
    assert gateway.retrieve_subscription(sub.id)["items"].data[0].price.id == item.price.id

    # The real change, at the same proration_date, gives the same prorations.
    updated = v1(gateway).subscriptions.update(
        sub.id,
        params={
            "items": [{"id": item.id, "price": business.id}],
            "proration_date": when,
            "proration_behavior": "always_invoice",
        },
    )
    billed = gateway.retrieve_invoice(updated.latest_invoice)
    assert [line.amount for line in billed.lines.data] == [line.amount for line in prorations]


def test_a_preview_is_retrievable_for_72_hours_but_never_listed_or_payable(app, gateway):
    sub = subscribe(app, gateway)
    shown = preview(gateway, sub)
    assert [line.amount for line in shown.lines.data] == [499]  # the next renewal
    again = v1(gateway).invoices.retrieve(shown.id)
    assert again.id == shown.id and again.total == shown.total
    lines = v1(gateway).invoices.line_items.list(shown.id)
    assert [line.amount for line in lines.data] == [499]
    assert all(line.id.startswith("il_tmp_") for line in lines.data)
    listed = v1(gateway).invoices.list(params={"customer": sub.customer})
    assert shown.id not in [invoice.id for invoice in listed.data]
    with pytest.raises(stripe.InvalidRequestError):
        v1(gateway).invoices.pay(shown.id)
    with pytest.raises(stripe.InvalidRequestError):
        v1(gateway).invoices.void_invoice(shown.id)
    advance(app, days=3, seconds=60)
    with pytest.raises(stripe.InvalidRequestError) as gone:
        v1(gateway).invoices.retrieve(shown.id)
    assert gone.value.http_status == 404


def test_previewing_a_reset_shows_the_immediate_invoice(app, gateway):
    sub = subscribe(app, gateway)
    yearly = gateway.price_for("starter_yearly")
    shown = preview(
        gateway,
        sub,
        items=[{"id": item_of(sub).id, "price": yearly.id}],
        billing_cycle_anchor={"type": "now"},
    )
    amounts = [line.amount for line in shown.lines.data]
    assert amounts[-1] == 4990 and len(amounts) == 2 and amounts[0] < 0


def test_previews_apply_the_customer_s_credit(app, gateway):
    sub = subscribe(app, gateway, lookup_key="business_monthly")
    advance(app, days=10)
    gateway.update_subscription(
        sub.id,
        items=[{"id": item_of(sub).id, "price": gateway.price_for("starter_monthly").id}],
        proration_behavior="always_invoice",
    )
    balance = v1(gateway).customers.retrieve(sub.customer).balance
    assert balance < 0
    shown = preview(gateway, gateway.retrieve_subscription(sub.id))
    assert shown.starting_balance == balance
    assert shown.amount_due == max(shown.total + balance, 0)


def test_previewing_a_cancellation(app, gateway):
    sub = subscribe(app, gateway)
    end = item_of(sub).current_period_end
    shown = preview(gateway, sub, cancel_at=end + 5 * 86400)
    line = shown.lines.data[0]
    assert line.period.end == end + 5 * 86400 and 0 < line.amount < 499
    now_shown = preview(gateway, sub, cancel_now=True, proration_behavior="create_prorations")
    assert now_shown.total < 0
    assert gateway.retrieve_subscription(sub.id).cancel_at is None


def test_previewing_a_new_subscription(app, gateway):
    sub = subscribe(app, gateway)
    price = gateway.price_for("professional_yearly")
    shown = v1(gateway).invoices.create_preview(
        params={
            "customer": sub.customer,
            "subscription_details": {"items": [{"price": price.id, "quantity": 2}]},
        }
    )
    assert shown.total == 2 * 12990 and shown.lines.data[0].quantity == 2


def test_preview_errors(app, gateway):
    sub = subscribe(app, gateway)
    item = item_of(sub)
    with pytest.raises(stripe.InvalidRequestError):
        v1(gateway).invoices.create_preview(params={"customer": sub.customer})
    with pytest.raises(stripe.InvalidRequestError) as none:
        preview(
            gateway,
            sub,
            items=[{"id": item.id, "quantity": 2}],
            proration_date=item.current_period_start,
            proration_behavior="none",
        )
    assert none.value.param == "subscription_details[proration_behavior]"
    with pytest.raises(stripe.InvalidRequestError) as anchor:
        preview(gateway, sub, billing_cycle_anchor={"type": "timestamp", "timestamp": 1})
    assert anchor.value.param == "subscription_details[billing_cycle_anchor][type]"
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        preview(gateway, sub, bogus="1")
    assert unknown.value.code == "parameter_unknown"
    assert unknown.value.param == "subscription_details[bogus]"
    assert raw(v1(gateway).customers.retrieve(sub.customer))["balance"] == 0
