"""The customer portal: its configurations through the SDK, its sessions, and the hosted page
obeying its session's configuration (through the test client, CSRF on)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
import stripe
from flask import Flask

from tests.sandbox.helpers import (
    advance,
    catalog_products,
    client_of,
    event_types,
    events_of,
    form_token,
    open_portal,
    pay,
    portal_configuration,
    raw,
    subscribe,
)
from webapp.stripe_gateway import StripeGateway


def v1(gateway: StripeGateway):
    return gateway.client.v1


def item_of(sub):
    return sub["items"].data[0]


# --- configurations ---------------------------------------------------------------------------


def test_a_configuration_has_stripe_s_defaults_and_the_first_is_the_default(app, gateway):
    configurations = v1(gateway).billing_portal.configurations
    first = configurations.create(params={"features": {"invoice_history": {"enabled": True}}})
    assert first.id.startswith("bpc_") and first.active is True and first.is_default is True
    features = raw(first)["features"]
    assert features["invoice_history"] == {"enabled": True}
    assert features["subscription_update"]["proration_behavior"] == "none"
    assert features["subscription_update"]["schedule_at_period_end"] == {"conditions": []}
    assert features["subscription_update"]["trial_update_behavior"] == "end_trial"
    assert features["subscription_update"]["billing_cycle_anchor"] is None
    assert features["subscription_cancel"]["mode"] == "at_period_end"
    assert features["payment_method_update"]["enabled"] is False
    assert raw(first)["login_page"] == {"enabled": False, "url": None}

    second = configurations.create(
        params={
            "features": {"payment_method_update": {"enabled": True}},
            "name": "Second",
            "default_return_url": "http://localhost/account",
            "metadata": {"purpose": "tests"},
        }
    )
    assert second.is_default is False and second.name == "Second"
    assert [c.id for c in configurations.list(params={"is_default": True}).data] == [first.id]
    assert {c.id for c in configurations.list().data} == {first.id, second.id}
    assert configurations.retrieve(second.id).metadata.purpose == "tests"

    off = configurations.update(second.id, params={"active": False, "name": ""})
    assert off.active is False and off.name is None and off.updated >= off.created
    assert [c.id for c in configurations.list(params={"active": False}).data] == [second.id]
    with pytest.raises(stripe.InvalidRequestError) as default:
        configurations.update(first.id, params={"active": False})
    assert default.value.param == "active"
    assert "billing_portal.configuration.created" in event_types(gateway)
    assert events_of(gateway, "billing_portal.configuration.updated")[0].data.object.id == second.id


@pytest.mark.parametrize(
    ("params", "param", "code"),
    [
        ({}, "features", "parameter_missing"),
        (
            {"features": {"subscription_update": {"proration_behavior": "none"}}},
            "features[subscription_update][enabled]",
            "parameter_missing",
        ),
        (
            {
                "features": {
                    "subscription_cancel": {
                        "enabled": True,
                        "cancellation_reason": {"enabled": True},
                    }
                }
            },
            "features[subscription_cancel][cancellation_reason][options]",
            "parameter_missing",
        ),
        (
            {
                "features": {
                    "subscription_cancel": {"enabled": True, "proration_behavior": "always_invoice"}
                }
            },
            "features[subscription_cancel][proration_behavior]",
            None,
        ),
        (
            {
                "features": {
                    "subscription_cancel": {
                        "enabled": True,
                        "mode": "at_period_end",
                        "proration_behavior": "create_prorations",
                    }
                }
            },
            "features[subscription_cancel][proration_behavior]",
            None,
        ),
        (
            {
                "features": {
                    "subscription_update": {
                        "enabled": True,
                        "schedule_at_period_end": {"conditions": [{"type": "cheaper"}]},
                    }
                }
            },
            "features[subscription_update][schedule_at_period_end][conditions][0][type]",
            None,
        ),
        (
            {
                "features": {
                    "subscription_update": {"enabled": True, "products": [{"product": "x"}]}
                }
            },
            "features[subscription_update][products][0][prices]",
            "parameter_missing",
        ),
        (
            {"features": {"invoice_history": {"enabled": True}}, "is_default": True},
            "is_default",
            "parameter_unknown",
        ),
        (
            {"features": {"telepathy": {"enabled": True}}},
            "features[telepathy]",
            "parameter_unknown",
        ),
    ],
)
def test_configuration_parameters_are_checked_like_stripe(app, gateway, params, param, code):
    with pytest.raises(stripe.InvalidRequestError) as refused:
        v1(gateway).billing_portal.configurations.create(params=params)
    assert refused.value.param == param
    assert refused.value.http_status == 400
    if code:
        assert refused.value.code == code


def test_a_configuration_offers_only_recurring_prices_of_their_product(app, gateway):
    products = catalog_products(gateway)
    wrong = {"product": products[0]["product"], "prices": [products[1]["prices"][0]]}
    with pytest.raises(stripe.InvalidRequestError) as refused:
        v1(gateway).billing_portal.configurations.create(
            params={"features": {"subscription_update": {"enabled": True, "products": [wrong]}}}
        )
    assert refused.value.param == "features[subscription_update][products][0][prices][0]"


# --- sessions -------------------------------------------------------------------------------


def test_sessions_need_a_default_or_active_configuration(app, gateway):
    # A customer made before anything sold the catalog: the account has no configuration yet.
    customer = gateway.create_customer(email="ada@example.com", user_id=1, idempotency_key="c").id
    sessions = v1(gateway).billing_portal.sessions
    with pytest.raises(stripe.InvalidRequestError) as none:
        sessions.create(params={"customer": customer, "return_url": "http://localhost/account"})
    assert "save your customer portal settings" in none.value.user_message

    portal_configuration(gateway)  # the first configuration of the account is its default
    [default] = v1(gateway).billing_portal.configurations.list(params={"is_default": True}).data
    other = v1(gateway).billing_portal.configurations.create(
        params={
            "features": {"invoice_history": {"enabled": True}},
            "default_return_url": "http://localhost/home",
        }
    )
    session = sessions.create(params={"customer": customer, "return_url": "http://x/account"})
    assert session.configuration == default.id and session.url.endswith(
        f"/sandbox/portal/{session.id}"
    )
    chosen = sessions.create(params={"customer": customer, "configuration": other.id})
    assert chosen.configuration == other.id and chosen.return_url == "http://localhost/home"
    with pytest.raises(stripe.InvalidRequestError) as no_return:
        sessions.create(params={"customer": customer})
    assert no_return.value.param == "return_url"
    v1(gateway).billing_portal.configurations.update(other.id, params={"active": False})
    with pytest.raises(stripe.InvalidRequestError) as inactive:
        sessions.create(params={"customer": customer, "configuration": other.id})
    assert inactive.value.param == "configuration"


# --- the hosted page --------------------------------------------------------------------------


class Portal:
    """A customer's portal page in one browser (test client)."""

    def __init__(self, app: Flask, gateway: StripeGateway, customer: str, configuration=None):
        self.client = client_of(app)
        session = open_portal(gateway, customer, configuration)
        self.path = urlsplit(session.url).path

    def html(self) -> str:
        return self.client.get(self.path).get_data(as_text=True)

    def post(self, action: str, **data: Any) -> str:
        """Post a form the way the page does; the answer is a redirect to the page, whose
        flashed message the page then shows."""
        token, _ = form_token(self.client, self.path)
        response = self.client.post(f"{self.path}/{action}", data={"csrf_token": token, **data})
        assert response.status_code == 303, response.get_data(as_text=True)
        assert urlsplit(response.headers["Location"]).path == self.path
        return self.html()


def offered(html: str) -> list[str]:
    return re.findall(r'<option value="(price_[^"]+)"', html)


def test_the_page_offers_only_the_configured_prices(app, gateway):
    sub = subscribe(app, gateway)
    business = gateway.price_for("business_monthly")
    config = portal_configuration(
        gateway,
        subscription_update={
            "enabled": True,
            "default_allowed_updates": ["price"],
            "products": [{"product": business.product, "prices": [business.id]}],
        },
    )
    page = Portal(app, gateway, sub.customer, config.id)
    html = page.html()
    assert offered(html) == [business.id]
    assert "<h1" in html and '<label for="price">New plan</label>' in html
    assert "Why are you cancelling?</legend>" in html and 'type="radio"' in html


def test_features_that_are_off_are_not_shown(app, gateway):
    sub = subscribe(app, gateway)
    config = v1(gateway).billing_portal.configurations.create(
        params={
            "features": {
                "subscription_update": {
                    "enabled": True,
                    "default_allowed_updates": ["quantity"],
                    "products": catalog_products(gateway),
                },
                "subscription_cancel": {"enabled": False},
                "payment_method_update": {"enabled": False},
                "invoice_history": {"enabled": False},
            }
        }
    )
    html = Portal(app, gateway, sub.customer, config.id).html()
    assert "Switch plan" not in html and offered(html) == []
    assert "Cancel at period end" not in html and "Update card" not in html
    assert '<h2 id="invoices-title">' not in html
    assert "Current plan" in html


def test_an_upgrade_applies_now_and_the_page_says_so(app, gateway):
    sub = subscribe(app, gateway)
    page = Portal(app, gateway, sub.customer)
    business = gateway.price_for("business_monthly")
    html = page.post("switch", price=business.id)
    assert "Your plan is now Business" in html
    updated = gateway.retrieve_subscription(sub.id)
    assert item_of(updated).price.id == business.id and updated.schedule is None
    invoice = gateway.retrieve_invoice(updated.latest_invoice)
    assert invoice.billing_reason == "subscription_update" and invoice.status == "paid"
    assert all(line.parent.subscription_item_details.proration for line in invoice.lines.data)
    # A price the configuration does not offer is refused.
    html = page.post("switch", price=gateway.price_for("agency_yearly").id + "x")
    assert "Choose one of the plans offered." in html


@pytest.mark.parametrize(
    ("behavior", "billed_now"), [("none", False), ("create_prorations", False)]
)
def test_the_configured_proration_behavior_is_applied(app, gateway, behavior, billed_now):
    sub = subscribe(app, gateway)
    config = portal_configuration(
        gateway,
        subscription_update={
            "enabled": True,
            "default_allowed_updates": ["price"],
            "products": catalog_products(gateway),
            "proration_behavior": behavior,
        },
    )
    Portal(app, gateway, sub.customer, config.id).post(
        "switch", price=gateway.price_for("business_monthly").id
    )
    assert (
        gateway.retrieve_subscription(sub.id).latest_invoice != sub.latest_invoice
    ) is billed_now
    advance(app, days=32)
    renewal = gateway.retrieve_invoice(gateway.retrieve_subscription(sub.id).latest_invoice)
    prorations = [
        line for line in renewal.lines.data if line.parent.subscription_item_details.proration
    ]
    assert len(prorations) == (2 if behavior == "create_prorations" else 0)


@pytest.mark.parametrize("anchor", ["now", "unchanged"])
def test_the_configured_billing_cycle_anchor_is_applied(app, gateway, anchor):
    sub = subscribe(app, gateway)
    advance(app, days=3)
    config = portal_configuration(
        gateway,
        subscription_update={
            "enabled": True,
            "default_allowed_updates": ["price"],
            "products": catalog_products(gateway),
            "proration_behavior": "create_prorations",
            "billing_cycle_anchor": anchor,
        },
    )
    Portal(app, gateway, sub.customer, config.id).post(
        "switch", price=gateway.price_for("business_monthly").id
    )
    updated = gateway.retrieve_subscription(sub.id)
    reset = item_of(updated).current_period_start != item_of(sub).current_period_start
    assert reset is (anchor == "now")
    assert (updated.latest_invoice != sub.latest_invoice) is (anchor == "now")
    if anchor == "now":
        invoice = gateway.retrieve_invoice(updated.latest_invoice)
        assert invoice.lines.data[-1].amount == 3999 and invoice.lines.data[0].amount < 0


def test_a_downgrade_is_scheduled_for_the_period_end(app, gateway):
    sub = subscribe(app, gateway, lookup_key="business_monthly")
    page = Portal(app, gateway, sub.customer)
    starter = gateway.price_for("starter_monthly")
    end = item_of(sub).current_period_end
    html = page.post("switch", price=starter.id)
    assert "Your plan switches to Starter" in html
    assert "Switches to Starter (monthly, $4.99) on" in html and "Cancel scheduled change" in html
    assert offered(html) == []  # no second switch while one is scheduled
    scheduled = gateway.retrieve_subscription(sub.id)
    assert item_of(scheduled).price.id == item_of(sub).price.id  # nothing changes yet
    schedule = v1(gateway).subscription_schedules.retrieve(scheduled.schedule)
    assert schedule.end_behavior == "release" and len(schedule.phases) == 2
    assert schedule.phases[0].end_date == end == schedule.phases[1].start_date
    assert raw(schedule)["phases"][1]["items"][0]["price"] == starter.id
    assert event_types(gateway)[-2:] == [
        "subscription_schedule.created",
        "customer.subscription.updated",
    ]

    advance(app, days=32)
    renewed = gateway.retrieve_subscription(sub.id)
    assert item_of(renewed).price.id == starter.id and renewed.schedule is None
    invoice = gateway.retrieve_invoice(renewed.latest_invoice)
    assert invoice.billing_reason == "subscription_cycle"
    assert [line.amount for line in invoice.lines.data] == [499]
    released = v1(gateway).subscription_schedules.retrieve(schedule.id)
    assert released.status == "released" and released.released_subscription == sub.id
    assert released.released_at == end
    assert "subscription_schedule.released" in event_types(gateway)
    assert "Switches to" not in page.html()


def test_a_shorter_interval_is_scheduled_even_when_it_costs_more(app, gateway):
    sub = subscribe(app, gateway, lookup_key="starter_yearly")
    config = portal_configuration(
        gateway,
        subscription_update={
            "enabled": True,
            "default_allowed_updates": ["price"],
            "products": catalog_products(gateway),
            "proration_behavior": "always_invoice",
            "schedule_at_period_end": {"conditions": [{"type": "shortening_interval"}]},
        },
    )
    page = Portal(app, gateway, sub.customer, config.id)
    html = page.post("switch", price=gateway.price_for("agency_monthly").id)
    assert "Switches to Agency (monthly" in html
    assert gateway.retrieve_subscription(sub.id).schedule


def test_a_scheduled_change_can_be_canceled(app, gateway):
    sub = subscribe(app, gateway, lookup_key="business_monthly")
    page = Portal(app, gateway, sub.customer)
    page.post("switch", price=gateway.price_for("starter_monthly").id)
    schedule_id = gateway.retrieve_subscription(sub.id).schedule
    html = page.post("keep-plan")
    assert "scheduled change is canceled" in html and "Switches to" not in html
    assert gateway.retrieve_subscription(sub.id).schedule is None
    assert v1(gateway).subscription_schedules.retrieve(schedule_id).status == "released"
    advance(app, days=32)
    assert item_of(gateway.retrieve_subscription(sub.id)).price.id == item_of(sub).price.id


def test_cancel_at_period_end_needs_a_reason_and_follows_the_billing_mode(app, gateway):
    sub = subscribe(app, gateway)
    page = Portal(app, gateway, sub.customer)
    html = page.post("cancel")
    assert "Choose why you are cancelling." in html
    assert gateway.retrieve_subscription(sub.id).cancel_at is None

    html = page.post("cancel", reason="too_expensive")
    assert "Your plan will end on" in html and "Ends on" in html and "resume" in html
    canceling = gateway.retrieve_subscription(sub.id)
    # Flexible (Checkout's default): cancel_at at the period end, cancel_at_period_end false.
    assert canceling.cancel_at == item_of(sub).current_period_end
    assert canceling.cancel_at_period_end is False
    assert canceling.cancellation_details.feedback == "too_expensive"
    assert canceling.cancellation_details.reason == "cancellation_requested"

    html = page.post("resume")
    assert "Your plan will renew as usual." in html and "Renews on" in html
    resumed = gateway.retrieve_subscription(sub.id)
    assert resumed.cancel_at is None and resumed.cancellation_details.feedback is None

    page.post("cancel", reason="unused")
    advance(app, days=32)
    ended = gateway.retrieve_subscription(sub.id)
    assert ended.status == "canceled" and ended.ended_at == item_of(sub).current_period_end
    assert events_of(gateway, "customer.subscription.deleted")[0].data.object.id == sub.id


def test_classic_subscriptions_cancel_with_cancel_at_period_end(app, gateway):
    price = gateway.price_for("starter_monthly")
    session = v1(gateway).checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer_email": "classic@example.com",
            "line_items": [{"price": price.id, "quantity": 1}],
            "success_url": "http://localhost/ok",
            "subscription_data": {"billing_mode": {"type": "classic"}},
        }
    )
    assert pay(client_of(app), session.url).status_code == 303
    sub = gateway.retrieve_subscription(gateway.retrieve_checkout_session(session.id).subscription)
    Portal(app, gateway, sub.customer).post("cancel", reason="other")
    canceling = gateway.retrieve_subscription(sub.id)
    assert canceling.cancel_at_period_end is True
    assert canceling.cancel_at == item_of(sub).current_period_end


def test_cancel_immediately_with_prorations(app, gateway):
    sub = subscribe(app, gateway, lookup_key="business_monthly")
    advance(app, days=10)
    config = portal_configuration(
        gateway,
        subscription_cancel={
            "enabled": True,
            "mode": "immediately",
            "proration_behavior": "create_prorations",
            "cancellation_reason": {"enabled": False, "options": ["other"]},
        },
    )
    page = Portal(app, gateway, sub.customer, config.id)
    assert "Cancel now" in page.html() and "Why are you cancelling?" not in page.html()
    html = page.post("cancel")
    assert "Your plan is canceled." in html and "No active subscription." in html
    ended = gateway.retrieve_subscription(sub.id)
    assert ended.status == "canceled"
    assert gateway.retrieve_invoice(ended.latest_invoice).total < 0


def test_cancelling_drops_a_scheduled_change(app, gateway):
    sub = subscribe(app, gateway, lookup_key="business_monthly")
    page = Portal(app, gateway, sub.customer)
    page.post("switch", price=gateway.price_for("starter_monthly").id)
    page.post("cancel", reason="other")
    canceling = gateway.retrieve_subscription(sub.id)
    assert canceling.schedule is None and canceling.cancel_at


def test_update_card(app, gateway):
    sub = subscribe(app, gateway)
    page = Portal(app, gateway, sub.customer)
    old_card = sub.default_payment_method
    card = {"card_number": "5555555555554444", "expiry": "01/31", "cvc": "999"}
    html = page.post("card", **card)
    assert "Card ending 4444 saved." in html and "Card ending 4444, expires 1/2031" in html
    new_card = gateway.retrieve_subscription(sub.id).default_payment_method
    assert new_card.startswith("pm_") and new_card != old_card
    assert "declined" in page.post("card", **{**card, "card_number": "4000000000000002"})
    assert "Card number: Enter the 16 digits" in page.post("card", **{**card, "card_number": "x"})


def test_the_0259_card_from_the_portal_disputes_the_next_renewal(app, gateway):
    sub = subscribe(app, gateway)
    Portal(app, gateway, sub.customer).post(
        "card", card_number="4000000000000259", expiry="12/34", cvc="123"
    )
    advance(app, days=32)
    disputes = v1(gateway).disputes.list().data
    assert len(disputes) == 1 and disputes[0].reason == "fraudulent"


def test_portal_posts_without_csrf_are_refused(app, gateway):
    sub = subscribe(app, gateway)
    page = Portal(app, gateway, sub.customer)
    response = page.client.post(f"{page.path}/cancel", data={"reason": "other"})
    assert response.status_code == 400
    assert gateway.retrieve_subscription(sub.id).cancel_at is None
    assert app.test_client().get("/sandbox/portal/bps_nope").status_code == 404
