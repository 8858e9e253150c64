"""3-D Secure (test card 4000 0027 6000 3184) and the hosted invoice page, through the real SDK:
a challenge at Checkout, a renewal that waits for the customer (requires_action,
invoice.payment_action_required), and paying an open invoice on its hosted page."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
import stripe
from flask.testing import FlaskClient

from tests.sandbox.helpers import (
    advance,
    answer_challenge,
    client_of,
    event_types,
    events_of,
    form_token,
    new_checkout,
    pay,
    raw,
    subscribe,
    subscribe_3ds,
)
from webapp.stripe_gateway import StripeGateway

NEEDS_3DS = "4000002760003184"
FAILS_OFF_SESSION = "4000000000000341"
THREE_DS_PATH = re.compile(r"^/sandbox/3ds/sandbox_3ds_\w+$")


def answer(client: FlaskClient, location: str, action: str):
    assert THREE_DS_PATH.match(urlsplit(location).path), location
    return answer_challenge(client, location, action)


def since(gateway: StripeGateway, count: int) -> list[str]:
    return event_types(gateway)[count:]


def csrf(client: FlaskClient, gateway: StripeGateway) -> str:
    """A CSRF token of this browser, from a page that still has a form (tokens are per
    session, so it is good for any of the sandbox's forms)."""
    return form_token(client, urlsplit(new_checkout(gateway, key="token").url).path)[0]


def card_last4(gateway: StripeGateway, pm_id: str) -> str:
    """The last four digits of a card, from the event that attached it (the sandbox serves no
    `GET /v1/payment_methods/{id}`)."""
    attached = [e.data.object for e in events_of(gateway, "payment_method.attached")]
    return next(pm.card.last4 for pm in attached if pm.id == pm_id)


# --- Checkout --------------------------------------------------------------------------------


def test_checkout_with_the_3ds_card_asks_for_authentication_before_paying(app, gateway):
    session = new_checkout(gateway)
    client = client_of(app)
    before = len(event_types(gateway))
    started = pay(client, session.url, "4000 0027 6000 3184")
    assert started.status_code == 303
    assert THREE_DS_PATH.match(urlsplit(started.headers["Location"]).path)
    # Nothing is paid or created while the bank waits for the cardholder.
    assert gateway.retrieve_checkout_session(session.id).status == "open"
    assert since(gateway, before) == []

    done = answer(client, started.headers["Location"], "complete")
    assert done.status_code == 303
    assert done.headers["Location"] == session.success_url
    paid = gateway.retrieve_checkout_session(session.id, expand=["subscription"])
    assert paid.status == "complete" and paid.subscription.status == "active"
    invoice = gateway.retrieve_invoice(paid.subscription.latest_invoice)
    assert invoice.status == "paid"
    pi = gateway.client.v1.payment_intents.list(params={"customer": paid.customer}).data[0]
    charge = gateway.client.v1.charges.retrieve(pi.latest_charge)
    three_ds = charge.payment_method_details.card.three_d_secure
    assert three_ds.result == "authenticated" and three_ds.authentication_flow == "challenge"
    assert "checkout.session.completed" in since(gateway, before)


def test_a_challenge_answers_once(app, gateway):
    session = new_checkout(gateway)
    client = client_of(app)
    location = pay(client, session.url, NEEDS_3DS).headers["Location"]
    assert answer(client, location, "complete").status_code == 303
    path = urlsplit(location).path
    again = client.post(path, data={"csrf_token": csrf(client, gateway), "action": "complete"})
    assert again.status_code == 303  # back to the (now complete) checkout, nothing paid twice
    subs = gateway.client.v1.subscriptions.list(params={"customer": session.customer}).data
    assert len(subs) == 1
    assert len(events_of(gateway, "invoice.paid")) == 1


def test_failing_the_challenge_leaves_the_checkout_open(app, gateway):
    session = new_checkout(gateway)
    client = client_of(app)
    location = pay(client, session.url, NEEDS_3DS).headers["Location"]
    failed = answer(client, location, "fail")
    assert failed.status_code == 303
    assert urlsplit(failed.headers["Location"]).path == urlsplit(session.url).path
    page = client.get(failed.headers["Location"]).get_data(as_text=True)
    assert "We are unable to authenticate your payment method." in page
    assert gateway.retrieve_checkout_session(session.id).status == "open"
    assert gateway.list_subscriptions(session.customer) == []


def test_the_3ds_page_refuses_unknown_challenges_and_bad_posts(app, gateway):
    client = client_of(app)
    assert client.get("/sandbox/3ds/sandbox_3ds_nope").status_code == 404
    session = new_checkout(gateway)
    path = urlsplit(pay(client, session.url, NEEDS_3DS).headers["Location"]).path
    token, _ = form_token(client, path)
    assert client.post(path, data={"csrf_token": token, "action": "maybe"}).status_code == 400
    assert client.post(path, data={"action": "complete"}).status_code == 400  # no CSRF token


# --- renewals that need the customer -------------------------------------------------------------


def test_a_renewal_with_the_3ds_card_requires_action(app, gateway):
    sub = subscribe_3ds(app, gateway)
    before = len(event_types(gateway))
    advance(app, days=32)
    sub = gateway.retrieve_subscription(sub.id)
    assert sub.status == "past_due"
    assert since(gateway, before) == [
        "invoice.upcoming",
        "invoice.created",
        "invoice.finalized",
        "payment_intent.created",
        "charge.failed",
        "payment_intent.requires_action",
        "invoice.payment_action_required",
        "invoice.payment_failed",
        "customer.subscription.updated",
    ]
    invoice = gateway.retrieve_invoice(sub.latest_invoice)
    assert invoice.status == "open" and invoice.billing_reason == "subscription_cycle"
    assert invoice.hosted_invoice_url and "/sandbox/i/test_" in invoice.hosted_invoice_url
    action = events_of(gateway, "invoice.payment_action_required")[0].data.object
    assert action.id == invoice.id and action.hosted_invoice_url == invoice.hosted_invoice_url
    assert action.next_payment_attempt is not None

    payment = gateway.client.v1.invoice_payments.list(params={"invoice": invoice.id}).data[0]
    pi = gateway.client.v1.payment_intents.retrieve(payment.payment.payment_intent)
    assert pi.status == "requires_action"
    assert pi.next_action.type == "use_stripe_sdk"
    assert pi.last_payment_error.code == "authentication_required"
    assert pi.last_payment_error.decline_code == "authentication_required"
    charge = gateway.client.v1.charges.retrieve(pi.latest_charge)
    assert charge.status == "failed" and charge.failure_code == "authentication_required"


def test_paying_now_through_the_api_says_action_is_required(app, gateway):
    sub = subscribe_3ds(app, gateway)
    advance(app, days=32)
    invoice_id = gateway.retrieve_subscription(sub.id).latest_invoice
    with pytest.raises(stripe.CardError) as caught:
        gateway.client.v1.invoices.pay(invoice_id)
    assert caught.value.code == "invoice_payment_intent_requires_action"
    assert gateway.retrieve_invoice(invoice_id).status == "open"


# --- the hosted invoice page -----------------------------------------------------------------


def hosted_path(gateway: StripeGateway, invoice_id: str) -> str:
    return urlsplit(gateway.retrieve_invoice(invoice_id).hosted_invoice_url).path


def test_a_finalized_invoice_has_a_hosted_page(app, gateway):
    sub = subscribe(app, gateway)
    invoice = gateway.retrieve_invoice(sub.latest_invoice)
    assert invoice.hosted_invoice_url.startswith("http://localhost/sandbox/i/test_")
    page = client_of(app).get(hosted_path(gateway, invoice.id))
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert invoice.number in html and "This invoice is paid" in html
    assert "card_number" not in html  # nothing to pay
    assert client_of(app).get("/sandbox/i/test_unknown").status_code == 404
    assert client_of(app).get(f"/sandbox/i/{invoice.id}").status_code == 404  # not the id


def test_a_preview_has_no_hosted_page(app, gateway):
    sub = subscribe(app, gateway)
    preview = gateway.client.v1.invoices.create_preview(params={"subscription": sub.id})
    assert raw(preview)["hosted_invoice_url"] is None


def test_authenticating_on_the_hosted_page_pays_the_renewal(app, gateway):
    sub = subscribe_3ds(app, gateway)
    advance(app, days=32)
    invoice_id = gateway.retrieve_subscription(sub.id).latest_invoice
    client = client_of(app)
    path = hosted_path(gateway, invoice_id)
    token, html = form_token(client, path)
    assert "Your bank needs you to confirm this payment with the card ending 3184" in html
    before = len(event_types(gateway))
    started = client.post(f"{path}/authenticate", data={"csrf_token": token})
    assert started.status_code == 303
    done = answer(client, started.headers["Location"], "complete")
    assert urlsplit(done.headers["Location"]).path == path
    assert since(gateway, before) == [
        "charge.succeeded",
        "payment_intent.succeeded",
        "invoice_payment.paid",
        "invoice.paid",
        "invoice.payment_succeeded",
        "customer.subscription.updated",
    ]
    renewed = gateway.retrieve_subscription(sub.id)
    assert renewed.status == "active"
    assert renewed.default_payment_method == sub.default_payment_method  # the same card
    assert gateway.retrieve_invoice(invoice_id).status == "paid"
    assert "Payment complete" in client.get(path).get_data(as_text=True)


def test_failing_authentication_on_the_hosted_page_keeps_the_invoice_open(app, gateway):
    sub = subscribe_3ds(app, gateway)
    advance(app, days=32)
    invoice_id = gateway.retrieve_subscription(sub.id).latest_invoice
    client = client_of(app)
    path = hosted_path(gateway, invoice_id)
    token, _ = form_token(client, path)
    started = client.post(f"{path}/authenticate", data={"csrf_token": token})
    answer(client, started.headers["Location"], "fail")
    assert gateway.retrieve_invoice(invoice_id).status == "open"
    assert gateway.retrieve_subscription(sub.id).status == "past_due"
    failed = events_of(gateway, "payment_intent.payment_failed")[0].data.object
    assert failed.status == "requires_payment_method"
    assert failed.last_payment_error.code == "payment_intent_authentication_failure"
    assert "We are unable to authenticate" in client.get(path).get_data(as_text=True)


def pay_hosted(client: FlaskClient, path: str, card: str, token: str | None = None):
    token = token or form_token(client, path)[0]
    data = {"csrf_token": token, "card_number": card, "expiry": "12 / 34", "cvc": "123"}
    return client.post(path, data=data)


def test_a_new_card_on_the_hosted_page_pays_and_becomes_the_subscriptions_card(app, gateway):
    sub = subscribe(app, gateway, card=FAILS_OFF_SESSION)
    advance(app, days=32)
    sub = gateway.retrieve_subscription(sub.id)
    assert sub.status == "past_due"
    customer_card = gateway.client.v1.customers.retrieve(sub.customer).invoice_settings
    before = len(event_types(gateway))
    reply = pay_hosted(client_of(app), hosted_path(gateway, sub.latest_invoice), "4242424242424242")
    assert reply.status_code == 303
    assert since(gateway, before) == [
        "charge.succeeded",
        "payment_intent.succeeded",
        "invoice_payment.paid",
        "invoice.paid",
        "invoice.payment_succeeded",
        "customer.subscription.updated",  # past_due -> active
        "payment_method.attached",
        "customer.subscription.updated",  # the new card is the subscription's
    ]
    recovered = gateway.retrieve_subscription(sub.id)
    assert recovered.status == "active"
    assert card_last4(gateway, recovered.default_payment_method) == "4242"
    attached = events_of(gateway, "payment_method.attached")[0].data.object
    assert attached.id == recovered.default_payment_method and attached.customer == sub.customer
    # The customer already had a default card: it stays (Stripe's "hosted_payment_method_save").
    after = gateway.client.v1.customers.retrieve(sub.customer).invoice_settings
    assert after.default_payment_method == customer_card.default_payment_method


def test_a_declined_card_on_the_hosted_page_is_shown_and_changes_nothing_else(app, gateway):
    sub = subscribe(app, gateway, card=FAILS_OFF_SESSION)
    advance(app, days=32)
    sub = gateway.retrieve_subscription(sub.id)
    reply = pay_hosted(client_of(app), hosted_path(gateway, sub.latest_invoice), "4000000000000002")
    assert reply.status_code == 402
    assert "Your card was declined." in reply.get_data(as_text=True)
    assert gateway.retrieve_invoice(sub.latest_invoice).status == "open"
    unchanged = gateway.retrieve_subscription(sub.id)
    assert unchanged.default_payment_method == sub.default_payment_method
    assert len(events_of(gateway, "payment_method.attached")) == 1  # checkout's card only


def test_the_3ds_card_on_the_hosted_page_goes_through_a_challenge(app, gateway):
    sub = subscribe(app, gateway, card=FAILS_OFF_SESSION)
    advance(app, days=32)
    sub = gateway.retrieve_subscription(sub.id)
    client = client_of(app)
    path = hosted_path(gateway, sub.latest_invoice)
    started = pay_hosted(client, path, NEEDS_3DS)
    assert started.status_code == 303
    assert gateway.retrieve_invoice(sub.latest_invoice).status == "open"
    answer(client, started.headers["Location"], "complete")
    assert gateway.retrieve_invoice(sub.latest_invoice).status == "paid"
    recovered = gateway.retrieve_subscription(sub.id)
    assert recovered.status == "active"
    assert card_last4(gateway, recovered.default_payment_method) == "3184"


def test_a_paid_invoice_cannot_be_paid_again_on_its_page(app, gateway):
    sub = subscribe(app, gateway)
    client = client_of(app)
    path = hosted_path(gateway, sub.latest_invoice)
    reply = pay_hosted(client, path, "4242424242424242", token=csrf(client, gateway))
    assert reply.status_code == 402
    assert "it can no longer be paid" in reply.get_data(as_text=True)
    assert len(events_of(gateway, "invoice.paid")) == 1
