"""Free trials in the sandbox, as Stripe runs them (docs.stripe.com/billing/subscriptions/trials,
docs.stripe.com/payments/checkout/free-trials): a Checkout Session with a trial starts a
`trialing` subscription with a $0 first invoice and no charge, card-less when
`payment_method_collection=if_required`; `trial_will_end` comes three days before the end; at
the end a card converts it (first period invoiced as `subscription_cycle` and paid), no card does
what `missing_payment_method` says."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
import stripe

from tests.sandbox.helpers import (
    advance,
    client_of,
    event_types,
    events_of,
    form_token,
    new_checkout,
    pay,
    sandbox_of,
    update_card,
)
from webapp.checkout_options import CheckoutOptions
from webapp.stripe_gateway import InvalidRequest, StripeGateway

DAY = 86400
CARD_LESS = CheckoutOptions(free_trials=True, trials_without_card=True)
WITH_CARD = CheckoutOptions(free_trials=True)


def trial_checkout(gateway: StripeGateway, options: CheckoutOptions = CARD_LESS, **kw: Any):
    return new_checkout(gateway, option_params=options.trial_params(14), **kw)


def start_without_card(app, session) -> Any:
    """Press "Start trial" on the hosted page, with no card."""
    client = client_of(app)
    path = urlsplit(session.url).path
    token, html = form_token(client, path)
    assert "14-day free trial" in html and "$0.00 due today" in html
    assert "$4.99 / month" in html  # the price after the trial
    response = client.post(f"{path}/trial", data={"csrf_token": token})
    assert response.status_code == 303, response.get_data(as_text=True)
    return response


def subscription_of(gateway: StripeGateway, session) -> Any:
    session = gateway.retrieve_checkout_session(session.id)
    return gateway.retrieve_subscription(session.subscription)


def now(app) -> int:
    with sandbox_of(app).store() as store:
        return store.now()


def test_a_card_less_trial_starts_trialing_with_a_zero_invoice_and_no_charge(app, gateway):
    session = trial_checkout(gateway)
    assert session.payment_method_collection == "if_required"
    assert session.amount_total == 0  # nothing is due today
    start_without_card(app, session)
    done = gateway.retrieve_checkout_session(session.id)
    assert done.status == "complete" and done.payment_status == "no_payment_required"
    sub = gateway.retrieve_subscription(done.subscription)
    assert sub.status == "trialing"
    assert sub.trial_end - sub.trial_start == 14 * DAY
    assert sub.default_payment_method is None
    assert sub.trial_settings.end_behavior.missing_payment_method == "cancel"
    item = sub["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (sub.trial_start, sub.trial_end)
    invoice = gateway.retrieve_invoice(done.invoice)
    assert invoice.billing_reason == "subscription_create"
    assert invoice.status == "paid" and invoice.total == 0 and invoice.amount_paid == 0
    [line] = invoice.lines.data
    assert line.amount == 0 and line.description == "Trial period for Starter"
    assert (line.period.start, line.period.end) == (sub.trial_start, sub.trial_end)
    types = event_types(gateway)
    assert "charge.succeeded" not in types and "payment_intent.created" not in types
    created = types.index("customer.subscription.created")
    assert created < types.index("invoice.paid") < types.index("checkout.session.completed")
    [event] = events_of(gateway, "customer.subscription.created")
    assert event.data.object.status == "trialing"


def test_without_if_required_the_card_is_still_needed(app, gateway):
    session = trial_checkout(gateway, WITH_CARD)
    client = client_of(app)
    path = urlsplit(session.url).path
    token, html = form_token(client, path)
    assert "14-day free trial" in html and "Start trial</button>" not in html
    response = client.post(f"{path}/trial", data={"csrf_token": token})
    assert response.status_code == 400
    assert gateway.retrieve_checkout_session(session.id).status == "open"
    # With a card: trialing, the card on file, still nothing charged.
    assert pay(client, session.url).status_code == 303
    sub = subscription_of(gateway, session)
    assert sub.status == "trialing" and sub.default_payment_method
    assert sub.trial_settings.end_behavior.missing_payment_method == "create_invoice"
    assert "charge.succeeded" not in event_types(gateway)


def test_trial_will_end_three_days_before_the_end(app, gateway):
    session = trial_checkout(gateway)
    start_without_card(app, session)
    sub = subscription_of(gateway, session)
    advance(app, seconds=sub.trial_end - 3 * DAY - now(app) - 60)
    assert events_of(gateway, "customer.subscription.trial_will_end") == []
    advance(app, seconds=120)
    [event] = events_of(gateway, "customer.subscription.trial_will_end")
    assert event.created == sub.trial_end - 3 * DAY
    assert event.data.object.id == sub.id and event.data.object.status == "trialing"
    advance(app, days=1)
    assert len(events_of(gateway, "customer.subscription.trial_will_end")) == 1


def test_a_card_added_in_the_portal_converts_the_trial(app, gateway):
    session = trial_checkout(gateway)
    start_without_card(app, session)
    sub = subscription_of(gateway, session)
    update_card(app, gateway, sub.customer)
    advance(app, days=14, seconds=1)
    sub = gateway.retrieve_subscription(sub.id)
    assert sub.status == "active"
    item = sub["items"].data[0]
    assert item.current_period_start == sub.trial_end
    invoice = gateway.retrieve_invoice(sub.latest_invoice)
    assert invoice.billing_reason == "subscription_cycle"
    assert invoice.status == "paid" and invoice.amount_paid == 499
    [line] = invoice.lines.data
    assert line.period.start == sub.trial_end
    [updated, *_] = events_of(gateway, "customer.subscription.updated")
    assert updated.data.object.status == "active"
    assert updated.data.previous_attributes.status == "trialing"
    paid = [e.data.object.id for e in events_of(gateway, "invoice.paid")]
    assert invoice.id in paid


def test_no_card_at_the_end_cancels(app, gateway):
    session = trial_checkout(gateway)
    start_without_card(app, session)
    sub = subscription_of(gateway, session)
    advance(app, days=14, seconds=1)
    sub = gateway.retrieve_subscription(sub.id)
    assert sub.status == "canceled" and sub.ended_at == sub.trial_end
    [deleted] = events_of(gateway, "customer.subscription.deleted")
    assert deleted.data.object.id == sub.id
    invoices = gateway.client.v1.invoices.list(params={"customer": sub.customer}).data
    assert [invoice.total for invoice in invoices] == [0]  # nothing was billed after the trial


def test_no_card_at_the_end_pauses_when_asked(app, gateway):
    params = CARD_LESS.trial_params(14)
    params["subscription_data"]["trial_settings"]["end_behavior"]["missing_payment_method"] = (
        "pause"
    )
    session = new_checkout(gateway, option_params=params)
    start_without_card(app, session)
    sub = subscription_of(gateway, session)
    advance(app, days=15)
    sub = gateway.retrieve_subscription(sub.id)
    assert sub.status == "paused"
    assert events_of(gateway, "customer.subscription.paused")
    assert len(gateway.client.v1.invoices.list(params={"customer": sub.customer}).data) == 1


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"subscription_data": {"trial_period_days": 0}}, "subscription_data[trial_period_days]"),
        ({"subscription_data": {"trial_period_days": 731}}, "subscription_data[trial_period_days]"),
        (
            {
                "subscription_data": {
                    "trial_period_days": 14,
                    "trial_settings": {"end_behavior": {"missing_payment_method": "stop"}},
                }
            },
            "subscription_data[trial_settings][end_behavior][missing_payment_method]",
        ),
        ({"payment_method_collection": "never"}, "payment_method_collection"),
    ],
)
def test_bad_trial_parameters_are_refused(app, gateway, params, param):
    with pytest.raises(InvalidRequest) as caught:
        new_checkout(gateway, option_params=params)
    cause = caught.value.__cause__
    assert isinstance(cause, stripe.InvalidRequestError) and cause.param == param
