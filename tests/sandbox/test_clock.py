"""The test clock: renewals, failed renewals, period-end cancellations."""

from __future__ import annotations

from flask import Flask

from tests.sandbox.helpers import new_checkout, pay
from webapp.stripe_gateway import StripeGateway


def subscribe(app: Flask, gateway: StripeGateway, card: str = "4242424242424242"):
    session = new_checkout(gateway)
    assert pay(app.test_client(), session.url, card).status_code == 303
    return gateway.retrieve_subscription(gateway.retrieve_checkout_session(session.id).subscription)


def advance(app: Flask, days: int) -> None:
    response = app.test_client().post("/sandbox/control/advance", json={"days": days})
    assert response.status_code == 200, response.get_data(as_text=True)


def latest(gateway: StripeGateway, event_type: str):
    return gateway.client.v1.events.list(params={"type": event_type, "limit": 1}).data[0]


def test_a_month_later_the_subscription_renews(app: Flask, gateway: StripeGateway):
    sub = subscribe(app, gateway)
    first_end = sub["items"].data[0].current_period_end
    advance(app, 32)
    renewed = gateway.retrieve_subscription(sub.id)
    item = renewed["items"].data[0]
    assert renewed.status == "active"
    assert item.current_period_start == first_end and item.current_period_end > first_end
    paid = latest(gateway, "invoice.paid").data.object
    assert paid.billing_reason == "subscription_cycle"
    assert paid.parent.subscription_details.subscription == sub.id
    assert paid.id == renewed.latest_invoice
    assert paid.amount_paid == item.price.unit_amount
    assert paid.lines.data[0].period.start == first_end


def test_the_0341_card_fails_at_renewal_and_goes_past_due(app: Flask, gateway):
    sub = subscribe(app, gateway, card="4000000000000341")
    assert sub.status == "active"
    advance(app, 32)
    assert gateway.retrieve_subscription(sub.id).status == "past_due"
    failed = latest(gateway, "invoice.payment_failed").data.object
    assert failed.billing_reason == "subscription_cycle" and failed.status == "open"
    assert failed.attempt_count == 1
    update = latest(gateway, "customer.subscription.updated").data
    assert update.object.status == "past_due" and update.previous_attributes.status == "active"


def test_cancel_at_period_end_ends_the_subscription(app: Flask, gateway: StripeGateway):
    sub = subscribe(app, gateway)
    gateway.update_subscription(sub.id, cancel_at_period_end=True)
    advance(app, 32)
    ended = gateway.retrieve_subscription(sub.id)
    assert ended.status == "canceled"
    assert ended.ended_at == sub["items"].data[0].current_period_end
    assert latest(gateway, "customer.subscription.deleted").data.object.id == sub.id


def test_create_prorations_wait_for_the_next_invoice(app: Flask, gateway: StripeGateway):
    sub = subscribe(app, gateway)
    bigger = gateway.price_for("business_monthly")
    updated = gateway.update_subscription(
        sub.id, items=[{"id": sub["items"].data[0].id, "price": bigger.id}]
    )
    assert updated.latest_invoice == sub.latest_invoice  # nothing invoiced yet
    advance(app, 32)
    invoice = gateway.retrieve_invoice(gateway.retrieve_subscription(sub.id).latest_invoice)
    prorations = [
        line for line in invoice.lines.data if line.parent.subscription_item_details.proration
    ]
    assert len(prorations) == 2
    assert invoice.amount_paid > bigger.unit_amount


def test_advance_via_cli_lists_what_happened(app: Flask, gateway: StripeGateway):
    subscribe(app, gateway)
    result = app.test_cli_runner().invoke(args=["stripe-sandbox", "advance", "--days", "31"])
    assert result.exit_code == 0, result.output
    assert "invoice.paid" in result.output and "sandbox time is now" in result.output
