"""invoice.upcoming: sent SANDBOX_UPCOMING_INVOICE_DAYS before each renewal, once per period,
shaped as Stripe sends it (an invoice with no id); and the site's webhook takes it and the 3-D
Secure events without error, delivered at least once."""

from __future__ import annotations

import pytest
from flask import Flask

from tests.conftest import make_app, sql
from tests.sandbox.helpers import (
    advance,
    event_types,
    events_of,
    raw,
    sandbox_of,
    subscribe,
    subscribe_3ds,
)
from webapp.config import ConfigError
from webapp.stripe_gateway import StripeGateway

DAY = 86400


def period_end(sub) -> int:
    return sub["items"].data[0].current_period_end


def now(app: Flask) -> int:
    with sandbox_of(app).store() as store:
        return store.now()


def advance_to(app: Flask, when: int) -> None:
    """Move the test clock to `when` (a second on, if the wall clock got there first)."""
    advance(app, seconds=max(when - now(app), 1))


def test_invoice_upcoming_comes_seven_days_before_the_renewal(app, gateway):
    sub = subscribe(app, gateway)
    end = period_end(sub)
    advance_to(app, end - 7 * DAY - 60)
    assert events_of(gateway, "invoice.upcoming") == []
    advance(app, seconds=120)
    [event] = events_of(gateway, "invoice.upcoming")
    assert event.created == end - 7 * DAY
    upcoming = event.data.object
    body = raw(gateway.client.v1.events.retrieve(event.id))["data"]["object"]
    assert "id" not in body  # "The received Invoice object will not have an invoice ID"
    assert upcoming.object == "invoice" and upcoming.billing_reason == "upcoming"
    assert upcoming.status == "draft" and upcoming.number is None
    assert upcoming.hosted_invoice_url is None
    assert upcoming.customer == sub.customer
    assert upcoming.parent.subscription_details.subscription == sub.id
    assert upcoming.next_payment_attempt == end
    price = sub["items"].data[0].price
    assert upcoming.amount_due == upcoming.total == price.unit_amount
    [line] = upcoming.lines.data
    assert line.period.start == end and line.id.startswith("il_tmp_")
    assert line.pricing.price_details.price == price.id

    advance(app, days=3)  # still before the renewal: not again
    assert len(events_of(gateway, "invoice.upcoming")) == 1


def test_one_invoice_upcoming_per_period_before_each_renewal(app, gateway):
    sub = subscribe(app, gateway)
    before = len(event_types(gateway))
    advance(app, days=32)
    types = event_types(gateway)[before:]
    assert types.index("invoice.upcoming") < types.index("invoice.created")
    assert types.count("invoice.upcoming") == 1
    renewed = gateway.retrieve_subscription(sub.id)
    advance_to(app, period_end(renewed) - 7 * DAY + 1)
    events = events_of(gateway, "invoice.upcoming")
    assert len(events) == 2
    assert events[0].data.object.next_payment_attempt == period_end(renewed)


def test_a_yearly_plan_gets_it_seven_days_before_too(app, gateway):
    sub = subscribe(app, gateway, lookup_key="starter_yearly")
    end = period_end(sub)
    advance(app, days=300)
    assert events_of(gateway, "invoice.upcoming") == []
    advance_to(app, end - 7 * DAY)
    [event] = events_of(gateway, "invoice.upcoming")
    assert event.data.object.next_payment_attempt == end
    assert event.data.object.amount_due == sub["items"].data[0].price.unit_amount


def test_no_invoice_upcoming_when_the_subscription_ends_instead(app, gateway):
    sub = subscribe(app, gateway)
    gateway.update_subscription(sub.id, cancel_at_period_end=True)
    advance(app, days=32)
    assert events_of(gateway, "invoice.upcoming") == []
    assert gateway.retrieve_subscription(sub.id).status == "canceled"


@pytest.mark.parametrize("config_overrides", [{"SANDBOX_UPCOMING_INVOICE_DAYS": 30}])
def test_the_days_before_are_a_setting(app, gateway, config_overrides):
    sub = subscribe(app, gateway)
    end = period_end(sub)
    advance(app, days=1, seconds=2)  # past end - 30 days, whatever the month's length
    [event] = events_of(gateway, "invoice.upcoming")
    # A month shorter than 30 days: sent as the period starts (assumption, see clock.py).
    assert event.created == max(end - 30 * DAY, sub["items"].data[0].current_period_start)


@pytest.mark.parametrize("value", [10, "soon", 0])
def test_only_stripes_choices_are_accepted(_schema, database_url, value):
    with pytest.raises(ConfigError, match="SANDBOX_UPCOMING_INVOICE_DAYS"):
        make_app(database_url, SANDBOX_UPCOMING_INVOICE_DAYS=value)


def test_the_environment_sets_the_days():
    from webapp.config import Config

    assert Config({"SANDBOX_UPCOMING_INVOICE_DAYS": "15"}).SANDBOX_UPCOMING_INVOICE_DAYS == 15
    assert Config({}).SANDBOX_UPCOMING_INVOICE_DAYS == 7


# --- the site's own webhook endpoint ------------------------------------------------------------


@pytest.mark.parametrize("config_overrides", [{"SANDBOX_DELIVER_TO_SELF": True}])
def test_the_site_takes_the_new_events_at_least_once(app: Flask, gateway: StripeGateway):
    """The new events reach /webhooks/stripe (twice each, as Stripe may) and are answered
    2xx: invoice.upcoming (no id; its handler sends yearly plans' renewal reminders) and the
    3-D Secure renewal's events are processed; none fails."""
    sub = subscribe_3ds(app, gateway)
    client = app.test_client()
    client.post("/sandbox/control/faults", json={"webhooks": {"mode": "duplicate", "count": 50}})
    advance(app, days=32)
    assert gateway.retrieve_subscription(sub.id).status == "past_due"
    deliveries = sandbox_of(app).webhooks.delivery_log(limit=1000)
    for event_type in ("invoice.upcoming", "invoice.payment_action_required"):
        sent = [d for d in deliveries if d.event_type == event_type]
        assert len(sent) == 2, event_type
        assert all(d.status == "delivered" and d.last_status == 200 for d in sent)
    assert all(d.last_status == 200 for d in deliveries)
    ledger = dict(sql(app, "select type, status from webhook_events"))
    assert ledger["invoice.upcoming"] == "processed"
    assert ledger["invoice.payment_action_required"] == "processed"
    assert ledger["invoice.payment_failed"] == "processed"
    counts = sql(app, "select count(*) from webhook_events where type = 'invoice.upcoming'")
    assert counts[0][0] == 1  # two deliveries, one event, recorded once
    assert "failed" not in {status for status in ledger.values()}
