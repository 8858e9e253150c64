"""Subscription schedules through the SDK: from a subscription or for a customer, phases on
the test clock, release, cancel (docs.stripe.com/billing/subscriptions/subscription-schedules)."""

from __future__ import annotations

import pytest
import stripe
from flask import Flask

from tests.sandbox.helpers import advance, event_types, events_of, raw, subscribe
from webapp.stripe_gateway import StripeGateway


def v1(gateway: StripeGateway):
    return gateway.client.v1


def item_of(sub):
    return sub["items"].data[0]


def schedule_of(gateway: StripeGateway, sub):
    return v1(gateway).subscription_schedules.create(params={"from_subscription": sub.id})


def test_from_subscription_makes_one_phase_for_the_current_period(app: Flask, gateway):
    sub = subscribe(app, gateway)
    schedule = schedule_of(gateway, sub)
    item = item_of(sub)
    assert schedule.id.startswith("sub_sched_") and schedule.status == "active"
    assert schedule.subscription == sub.id and schedule.customer == sub.customer
    assert schedule.end_behavior == "release" and schedule.released_at is None
    assert schedule.billing_mode.type == sub.billing_mode.type
    (phase,) = schedule.phases
    assert (phase.start_date, phase.end_date) == (
        item.current_period_start,
        item.current_period_end,
    )
    assert raw(schedule)["phases"][0]["items"][0]["price"] == item.price.id  # an id
    assert phase["items"][0].quantity == 1
    assert schedule.current_phase.start_date == phase.start_date
    assert gateway.retrieve_subscription(sub.id).schedule == schedule.id
    assert event_types(gateway)[-2:] == [
        "subscription_schedule.created",
        "customer.subscription.updated",
    ]
    update = events_of(gateway, "customer.subscription.updated")[0].data
    assert update.previous_attributes.schedule is None
    with pytest.raises(stripe.InvalidRequestError):
        schedule_of(gateway, sub)
    with pytest.raises(stripe.InvalidRequestError) as both:
        v1(gateway).subscription_schedules.create(
            params={"from_subscription": sub.id, "end_behavior": "cancel"}
        )
    assert both.value.param == "end_behavior"
    listed = v1(gateway).subscription_schedules.list(params={"customer": sub.customer})
    assert [s.id for s in listed.data] == [schedule.id]
    assert v1(gateway).subscription_schedules.retrieve(schedule.id).id == schedule.id


def test_a_next_phase_changes_the_price_at_the_renewal_then_releases(app, gateway):
    sub = subscribe(app, gateway)
    schedule = schedule_of(gateway, sub)
    current = schedule.phases[0]
    business = gateway.price_for("business_monthly")
    updated = v1(gateway).subscription_schedules.update(
        schedule.id,
        params={
            "phases": [
                {
                    "items": [{"price": item_of(sub).price.id, "quantity": 1}],
                    "start_date": current.start_date,
                    "end_date": current.end_date,
                },
                {"items": [{"price": business.id}], "duration": {"interval": "month"}},
            ]
        },
    )
    assert [p.start_date for p in updated.phases] == [current.start_date, current.end_date]
    assert item_of(gateway.retrieve_subscription(sub.id)).price.id != business.id

    advance(app, days=32)
    renewed = gateway.retrieve_subscription(sub.id)
    assert item_of(renewed).price.id == business.id and renewed.schedule == schedule.id
    invoice = gateway.retrieve_invoice(renewed.latest_invoice)
    assert invoice.billing_reason == "subscription_cycle"
    assert [line.amount for line in invoice.lines.data] == [3999]
    schedule = v1(gateway).subscription_schedules.retrieve(schedule.id)
    assert schedule.current_phase.start_date == current.end_date
    assert "subscription_schedule.updated" in event_types(gateway)

    advance(app, days=31)  # past the last phase: released, the subscription goes on
    schedule = v1(gateway).subscription_schedules.retrieve(schedule.id)
    assert schedule.status == "released" and schedule.released_subscription == sub.id
    assert schedule.subscription is None and schedule.current_phase is None
    after = gateway.retrieve_subscription(sub.id)
    assert after.schedule is None and after.status == "active"


def test_changing_the_current_phase_changes_the_subscription_now(app, gateway):
    sub = subscribe(app, gateway)
    schedule = schedule_of(gateway, sub)
    business = gateway.price_for("business_monthly")
    v1(gateway).subscription_schedules.update(
        schedule.id,
        params={
            "phases": [
                {
                    "items": [{"price": business.id}],
                    "end_date": schedule.phases[0].end_date,
                }
            ],
            "proration_behavior": "always_invoice",
        },
    )
    changed = gateway.retrieve_subscription(sub.id)
    assert item_of(changed).price.id == business.id
    invoice = gateway.retrieve_invoice(changed.latest_invoice)
    assert invoice.billing_reason == "subscription_update" and invoice.amount_paid > 0
    with pytest.raises(stripe.InvalidRequestError) as moved:
        v1(gateway).subscription_schedules.update(
            schedule.id,
            params={"phases": [{"items": [{"price": business.id}], "start_date": 12345}]},
        )
    assert moved.value.param == "phases[0][start_date]"


def test_release_keeps_the_subscription(app, gateway):
    sub = subscribe(app, gateway)
    schedule = schedule_of(gateway, sub)
    released = v1(gateway).subscription_schedules.release(schedule.id)
    assert released.status == "released" and released.released_at
    assert released.released_subscription == sub.id and released.subscription is None
    after = gateway.retrieve_subscription(sub.id)
    assert after.schedule is None and after.status == "active"
    assert event_types(gateway)[-2:] == [
        "subscription_schedule.released",
        "customer.subscription.updated",
    ]
    with pytest.raises(stripe.InvalidRequestError):
        v1(gateway).subscription_schedules.release(schedule.id)
    with pytest.raises(stripe.InvalidRequestError):
        v1(gateway).subscription_schedules.cancel(schedule.id)


def test_canceling_a_schedule_cancels_its_subscription(app, gateway):
    sub = subscribe(app, gateway, lookup_key="business_monthly")
    advance(app, days=10)
    schedule = schedule_of(gateway, sub)
    canceled = v1(gateway).subscription_schedules.cancel(schedule.id)
    assert canceled.status == "canceled" and canceled.canceled_at
    ended = gateway.retrieve_subscription(sub.id)
    assert ended.status == "canceled"
    types = event_types(gateway)
    assert types.index("subscription_schedule.canceled") < types.index(
        "customer.subscription.deleted"
    )
    # invoice_now and prorate default to true: the unused time is credited.
    final = gateway.retrieve_invoice(ended.latest_invoice)
    assert final.total < 0 and v1(gateway).customers.retrieve(sub.customer).balance < 0


def test_canceling_the_subscription_ends_its_schedule(app, gateway):
    sub = subscribe(app, gateway)
    schedule = schedule_of(gateway, sub)
    v1(gateway).subscriptions.cancel(sub.id)
    assert v1(gateway).subscription_schedules.retrieve(schedule.id).status == "canceled"


def test_a_schedule_for_a_customer_starts_its_own_subscription(app, gateway):
    customer = subscribe(app, gateway).customer  # has a card on file
    yearly = gateway.price_for("professional_yearly")
    schedule = v1(gateway).subscription_schedules.create(
        params={
            "customer": customer,
            "start_date": "now",
            "end_behavior": "cancel",
            "phases": [{"items": [{"price": yearly.id, "quantity": 2}]}],
        }
    )
    assert schedule.status == "active" and schedule.subscription
    assert schedule.billing_mode.type == "flexible"
    sub = gateway.retrieve_subscription(schedule.subscription)
    assert item_of(sub).price.id == yearly.id and item_of(sub).quantity == 2
    assert sub.schedule == schedule.id and sub.cancel_at == schedule.phases[0].end_date
    invoice = gateway.retrieve_invoice(sub.latest_invoice)
    assert invoice.status == "paid" and invoice.amount_paid == 2 * 12990
    assert invoice.billing_reason == "subscription_create"

    advance(app, days=366)  # the last phase ends: end_behavior=cancel
    assert gateway.retrieve_subscription(sub.id).status == "canceled"
    done = v1(gateway).subscription_schedules.retrieve(schedule.id)
    assert done.status == "completed" and done.completed_at
    assert "subscription_schedule.completed" in event_types(gateway)


def test_a_future_schedule_waits_then_starts(app, gateway):
    first = subscribe(app, gateway)
    start = first.created + 5 * 86400
    schedule = v1(gateway).subscription_schedules.create(
        params={
            "customer": first.customer,
            "start_date": start,
            "phases": [{"items": [{"price": gateway.price_for("starter_yearly").id}]}],
        }
    )
    assert schedule.status == "not_started" and schedule.subscription is None
    waiting = v1(gateway).subscription_schedules.list(params={"scheduled": True})
    assert [s.id for s in waiting.data] == [schedule.id]
    advance(app, days=6)
    started = v1(gateway).subscription_schedules.retrieve(schedule.id)
    assert started.status == "active" and started.subscription
    sub = gateway.retrieve_subscription(started.subscription)
    assert sub.start_date == start and item_of(sub).current_period_start == start
    update = events_of(gateway, "subscription_schedule.updated")[0].data
    assert update.object.status == "active" and update.previous_attributes.status == "not_started"


def test_schedule_errors(app, gateway):
    sub = subscribe(app, gateway)
    with pytest.raises(stripe.InvalidRequestError) as missing:
        v1(gateway).subscription_schedules.create(params={"phases": []})
    assert missing.value.code == "parameter_missing"
    with pytest.raises(stripe.InvalidRequestError) as behavior:
        v1(gateway).subscription_schedules.create(
            params={
                "customer": sub.customer,
                "end_behavior": "renew",
                "phases": [{"items": [{"price": item_of(sub).price.id}]}],
            }
        )
    assert behavior.value.param == "end_behavior"
    with pytest.raises(stripe.InvalidRequestError) as nope:
        v1(gateway).subscription_schedules.retrieve("sub_sched_nope")
    assert nope.value.http_status == 404
