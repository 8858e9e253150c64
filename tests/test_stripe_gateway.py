"""The gateway through the real SDK against the sandbox: every call, every error, no mocks."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import stripe
from flask import Flask
from werkzeug.serving import make_server

from tests.conftest import make_app
from tests.sandbox.helpers import new_checkout, pay, sandbox_of
from webapp.sandbox.webhooks import sign
from webapp.stripe_gateway import (
    SANDBOX_API_BASE,
    AuthenticationFailed,
    CardDeclined,
    InvalidRequest,
    ProviderUnavailable,
    ResourceMissing,
    SandboxHTTPClient,
    SignatureVerificationFailed,
    StripeGateway,
    get_gateway,
)

SECRET = "whsec_test_gateway"


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    # The sandbox only: the site's own webhook endpoint belongs to billing's tests.
    return {"SANDBOX_DELIVER_TO_SELF": False, "STRIPE_WEBHOOK_SECRET": SECRET}


@pytest.fixture
def gateway(app: Flask) -> Iterator[StripeGateway]:
    with app.app_context():
        yield get_gateway()


@pytest.fixture
def sdk(gateway: StripeGateway) -> stripe.StripeClient:
    """The gateway's own StripeClient, to send requests the gateway never sends."""
    return gateway.client


def paid_subscription(app, gateway, card="4242424242424242", lookup_key="starter_monthly"):
    session = new_checkout(gateway, lookup_key=lookup_key)
    response = pay(app.test_client(), session.url, card)
    assert response.status_code == 303, response.get_data(as_text=True)
    return gateway.retrieve_checkout_session(session.id, expand=["subscription"]).subscription


# --- mode selection -------------------------------------------------------------------------


def test_sandbox_mode_without_a_key_dispatches_in_process(app: Flask, gateway: StripeGateway):
    assert gateway.sandbox is True
    requestor = gateway.client._requestor
    assert isinstance(requestor._client, SandboxHTTPClient)
    assert requestor._options.base_addresses["api"] == SANDBOX_API_BASE
    assert requestor._options.max_network_retries == app.config["STRIPE_MAX_NETWORK_RETRIES"]
    assert stripe.enable_telemetry is False


def test_a_key_and_api_base_talk_http_to_that_server(app: Flask, database_url: str):
    """`stripe-sandbox serve` in one app, a real-mode app pointed at it over HTTP."""
    from webapp.sandbox.cli import APIAndSite

    server = make_server("127.0.0.1", 0, APIAndSite(app, sandbox_of(app)), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client_app = make_app(
            database_url,
            STRIPE_SECRET_KEY="sk_test_from_elsewhere",
            STRIPE_API_BASE=f"http://127.0.0.1:{server.server_port}",
            STRIPE_WEBHOOK_SECRET=SECRET,
        )
        with client_app.app_context():
            remote = get_gateway()
            assert remote.sandbox is False
            assert "stripe_sandbox" not in client_app.extensions
            customer = remote.create_customer(
                email="far@example.com", user_id=7, idempotency_key="x"
            )
        with app.app_context():
            assert (
                get_gateway().client.v1.customers.retrieve(customer.id).email == "far@example.com"
            )
        bad_key_app = make_app(
            database_url,
            STRIPE_SECRET_KEY="sk_live_not_for_a_sandbox",
            STRIPE_API_BASE=f"http://127.0.0.1:{server.server_port}",
            STRIPE_WEBHOOK_SECRET=SECRET,
        )
        with bad_key_app.app_context(), pytest.raises(AuthenticationFailed):
            get_gateway().retrieve_subscription("sub_x")
    finally:
        server.shutdown()
        thread.join(5)


# --- prices and customers -------------------------------------------------------------------


def test_price_for_returns_the_active_price_with_that_lookup_key(gateway: StripeGateway):
    price = gateway.price_for("professional_yearly")
    assert isinstance(price, stripe.Price)
    assert price.lookup_key == "professional_yearly"
    assert price.active and price.recurring.interval == "year"
    assert price.unit_amount > 0 and price.currency == "usd"


def test_price_for_an_unknown_lookup_key_is_resource_missing(gateway: StripeGateway):
    with pytest.raises(ResourceMissing):
        gateway.price_for("nope_monthly")


def test_create_customer_is_idempotent_per_key(gateway: StripeGateway):
    first = gateway.create_customer(email="a@example.com", user_id=1, idempotency_key="k-1")
    again = gateway.create_customer(email="a@example.com", user_id=1, idempotency_key="k-1")
    assert isinstance(first, stripe.Customer)
    assert again.id == first.id
    assert first.metadata["user_id"] == "1"
    with pytest.raises(InvalidRequest) as caught:
        gateway.create_customer(email="other@example.com", user_id=1, idempotency_key="k-1")
    assert caught.value.code == "idempotency_error"
    listed = gateway.client.v1.customers.list(params={"email": "a@example.com"})
    assert [c.id for c in listed.data] == [first.id]


def test_idempotent_replay_is_marked_and_creates_nothing(sdk: stripe.StripeClient):
    options = {"idempotency_key": "replay-me"}
    first = sdk.v1.customers.create(params={"email": "r@example.com"}, options=options)
    again = sdk.v1.customers.create(params={"email": "r@example.com"}, options=options)
    assert again.last_response.headers.get("idempotent-replayed") == "true"
    assert again.id == first.id
    assert len(sdk.v1.customers.list(params={"email": "r@example.com"}).data) == 1


# --- checkout sessions ----------------------------------------------------------------------


def test_checkout_session_carries_nested_params_and_fills_the_success_url(gateway):
    session = new_checkout(gateway, lookup_key="business_monthly", user_id=42)
    assert isinstance(session, stripe.checkout.Session)
    assert session.mode == "subscription" and session.status == "open"
    assert session.client_reference_id == "42"
    assert session.metadata.to_dict() == {"user_id": "42", "plan": "business", "cycle": "monthly"}
    assert session.success_url.endswith(f"session_id={session.id}")
    assert session.url.endswith(f"/sandbox/checkout/{session.id}")
    assert session.expires_at > time.time() + 23 * 3600

    expanded = gateway.retrieve_checkout_session(session.id, expand=["customer", "line_items"])
    assert expanded.customer.email == "ada@example.com"
    item = expanded.line_items.data[0]
    assert item.price.lookup_key == "business_monthly" and item.quantity == 1


def test_subscription_data_metadata_reaches_the_subscription(app: Flask, gateway):
    sub = paid_subscription(app, gateway)
    assert sub.metadata.to_dict() == {"user_id": "1", "plan": "starter", "cycle": "monthly"}


def test_expire_closes_an_open_session_once(gateway: StripeGateway):
    session = new_checkout(gateway)
    expired = gateway.expire_checkout_session(session.id)
    assert expired.status == "expired" and expired.url is None
    with pytest.raises(InvalidRequest) as caught:
        gateway.expire_checkout_session(session.id)
    assert caught.value.code == "checkout_session_not_open"


def test_expires_at_out_of_range_is_refused(sdk: stripe.StripeClient, gateway):
    price = gateway.price_for("starter_monthly")
    with pytest.raises(stripe.InvalidRequestError) as caught:
        sdk.v1.checkout.sessions.create(
            params={
                "mode": "subscription",
                "line_items": [{"price": price.id, "quantity": 1}],
                "success_url": "http://localhost/ok",
                "expires_at": int(time.time()) + 60,
            }
        )
    assert caught.value.param == "expires_at"


def test_an_overdue_session_expires_when_read(app: Flask, gateway: StripeGateway):
    price = gateway.price_for("starter_monthly")
    session = gateway.client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer_email": "late@example.com",
            "line_items": [{"price": price.id, "quantity": 1}],
            "success_url": "http://localhost/ok",
            "expires_at": int(time.time()) + 1800,
        }
    )
    client = app.test_client()
    assert client.post("/sandbox/control/advance", json={"seconds": 1801}).status_code == 200
    assert gateway.retrieve_checkout_session(session.id).status == "expired"


# --- subscriptions, invoices, portal --------------------------------------------------------


def test_subscription_round_trip(app: Flask, gateway: StripeGateway):
    sub = paid_subscription(app, gateway)
    assert isinstance(sub, stripe.Subscription) and sub.status == "active"
    item = sub["items"].data[0]
    assert item.current_period_end > item.current_period_start
    assert item.price.lookup_key == "starter_monthly"
    assert [s.id for s in gateway.list_subscriptions(sub.customer)] == [sub.id]

    invoice = gateway.retrieve_invoice(sub.latest_invoice)
    assert isinstance(invoice, stripe.Invoice)
    assert invoice.parent.subscription_details.subscription == sub.id
    assert invoice.billing_reason == "subscription_create" and invoice.status == "paid"
    assert invoice.lines.data[0].pricing.price_details.price == item.price.id

    ending = gateway.update_subscription(sub.id, cancel_at_period_end=True)
    assert ending.cancel_at_period_end is True and ending.cancel_at == item.current_period_end
    resumed = gateway.update_subscription(sub.id, cancel_at_period_end=False)
    assert resumed.cancel_at_period_end is False and resumed.cancel_at is None

    canceled = gateway.cancel_subscription(sub.id)
    assert canceled.status == "canceled" and canceled.ended_at
    assert gateway.retrieve_subscription(sub.id).status == "canceled"
    assert gateway.list_subscriptions(sub.customer)[0].status == "canceled"


def test_swapping_the_price_prorates_and_invoices(app: Flask, gateway: StripeGateway):
    sub = paid_subscription(app, gateway)
    item = sub["items"].data[0]
    bigger = gateway.price_for("business_monthly")
    updated = gateway.update_subscription(
        sub.id,
        items=[{"id": item.id, "price": bigger.id}],
        proration_behavior="always_invoice",
    )
    assert updated["items"].data[0].price.id == bigger.id
    assert updated["items"].data[0].current_period_end == item.current_period_end
    invoice = gateway.retrieve_invoice(updated.latest_invoice)
    assert invoice.billing_reason == "subscription_update" and invoice.status == "paid"
    assert 0 < invoice.amount_paid <= bigger.unit_amount - item.price.unit_amount
    assert all(line.parent.subscription_item_details.proration for line in invoice.lines.data)


def test_a_declining_card_makes_an_error_if_incomplete_update_fail(app, gateway):
    sub = paid_subscription(app, gateway, card="4000000000000341")
    bigger = gateway.price_for("agency_monthly")
    with pytest.raises(CardDeclined) as caught:
        gateway.update_subscription(
            sub.id,
            items=[{"id": sub["items"].data[0].id, "price": bigger.id}],
            proration_behavior="always_invoice",
            payment_behavior="error_if_incomplete",
        )
    assert caught.value.decline_code == "generic_decline"
    assert caught.value.user_message == "Your card was declined."
    unchanged = gateway.retrieve_subscription(sub.id)
    assert unchanged["items"].data[0].price.lookup_key == "starter_monthly"


def test_portal_session_points_at_the_hosted_portal(app: Flask, gateway: StripeGateway):
    sub = paid_subscription(app, gateway)
    portal = gateway.create_portal_session(customer_id=sub.customer, return_url="http://x/account")
    assert isinstance(portal, stripe.billing_portal.Session)
    assert portal.url.endswith(f"/sandbox/portal/{portal.id}")
    assert portal.return_url == "http://x/account"


# --- errors ---------------------------------------------------------------------------------


def test_unknown_parameter_is_parameter_unknown(sdk: stripe.StripeClient):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        sdk.v1.customers.create(params={"email": "a@example.com", "colour": "blue"})  # type: ignore[typeddict-unknown-key]
    assert caught.value.http_status == 400
    assert caught.value.code == "parameter_unknown" and caught.value.param == "colour"


def test_unknown_nested_parameter_is_named_with_brackets(sdk: stripe.StripeClient, gateway):
    price = gateway.price_for("starter_monthly")
    with pytest.raises(stripe.InvalidRequestError) as caught:
        sdk.v1.checkout.sessions.create(
            params={
                "mode": "subscription",
                "success_url": "http://localhost/ok",
                "line_items": [{"price": price.id, "quantity": 1, "tax_rates": ["x"]}],  # type: ignore[typeddict-unknown-key]
            }
        )
    assert caught.value.param == "line_items[0][tax_rates]"


def test_unknown_ids_are_resource_missing(gateway: StripeGateway, sdk: stripe.StripeClient):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        sdk.v1.subscriptions.retrieve("sub_missing")
    assert caught.value.http_status == 404 and caught.value.code == "resource_missing"
    for call in (
        lambda: gateway.retrieve_subscription("sub_missing"),
        lambda: gateway.retrieve_invoice("in_missing"),
        lambda: gateway.retrieve_checkout_session("cs_test_missing"),
        lambda: gateway.cancel_subscription("sub_missing"),
        lambda: gateway.create_portal_session(customer_id="cus_missing", return_url="http://x"),
    ):
        with pytest.raises(ResourceMissing):
            call()


def test_a_bad_api_key_is_authentication_failed(app: Flask):
    client = stripe.StripeClient(
        "sk_live_wrong",
        http_client=SandboxHTTPClient(sandbox_of(app).api, timeout=5),
        base_addresses={"api": SANDBOX_API_BASE},
    )
    with pytest.raises(stripe.AuthenticationError):
        client.v1.customers.list()
    with app.app_context():
        gateway = StripeGateway(client)
        with pytest.raises(AuthenticationFailed):
            gateway.retrieve_subscription("sub_x")


@pytest.mark.parametrize("config_overrides", [{"STRIPE_MAX_NETWORK_RETRIES": 0}])
def test_a_500_is_provider_unavailable(app: Flask, gateway: StripeGateway, sdk):
    sandbox_of(app).faults.set_api(1, "500")
    with pytest.raises(stripe.APIError):
        sdk.v1.customers.list()
    sandbox_of(app).faults.set_api(1, "500")
    with pytest.raises(ProviderUnavailable) as caught:
        gateway.retrieve_subscription("sub_x")
    assert "not responding" in caught.value.user_message
    assert gateway.client.v1.customers.list() is not None  # the switch is spent


@pytest.mark.parametrize("config_overrides", [{"STRIPE_MAX_NETWORK_RETRIES": 2}])
def test_the_sdk_retries_a_500_with_the_same_idempotency_key(app: Flask, gateway):
    sandbox_of(app).faults.set_api(1, "500")
    customer = gateway.create_customer(email="retry@example.com", user_id=3, idempotency_key="r")
    assert customer.email == "retry@example.com"
    listed = gateway.client.v1.customers.list(params={"email": "retry@example.com"})
    assert len(listed.data) == 1


@pytest.mark.parametrize(
    "config_overrides", [{"STRIPE_MAX_NETWORK_RETRIES": 0, "STRIPE_TIMEOUT_SECONDS": 0.5}]
)
def test_a_hanging_api_is_a_timeout_and_provider_unavailable(app: Flask, gateway):
    sandbox_of(app).faults.set_api(1, "timeout", delay=1.5)
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable):
        gateway.retrieve_subscription("sub_x")
    assert time.monotonic() - started < 1.4


# --- webhook signatures ---------------------------------------------------------------------


def _signed(payload: dict[str, Any], secret: str = SECRET, at: int | None = None):
    body = json.dumps(payload).encode()
    return body, sign(body, secret, at)


EVENT = {
    "id": "evt_1",
    "object": "event",
    "type": "invoice.paid",
    "created": 1,
    "data": {"object": {}},
}
# The SDK-object flavour and the plain-JSON flavour the webhook endpoint uses verify alike.
VERIFIERS = pytest.mark.parametrize("verify", ["construct_event", "verify_webhook"])


def test_sandbox_signatures_verify_with_the_sdk(gateway: StripeGateway):
    body, header = _signed(EVENT)
    event = stripe.Webhook.construct_event(body, header, SECRET)
    assert event.id == "evt_1"
    assert gateway.construct_event(body, header, [SECRET]).type == "invoice.paid"


@VERIFIERS
def test_verification_tries_each_secret_for_rotation(gateway: StripeGateway, verify: str):
    body, header = _signed(EVENT, secret="whsec_new")
    event = getattr(gateway, verify)(body, header, ["whsec_old", "whsec_new"])
    assert event["id"] == "evt_1" and event["type"] == "invoice.paid"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda body, header: (body.replace(b"invoice.paid", b"invoice.void"), header),
        lambda body, header: (body, header.replace("v1=", "v1=0")),
        lambda body, header: (body, ""),
        lambda body, header: (b"not json", sign(b"not json", SECRET)),
    ],
    ids=["tampered-body", "bad-signature", "no-header", "not-json"],
)
@VERIFIERS
def test_tampered_webhooks_fail(gateway: StripeGateway, tamper, verify: str):
    body, header = tamper(*_signed(EVENT))
    with pytest.raises(SignatureVerificationFailed):
        getattr(gateway, verify)(body, header, [SECRET])


def test_tampered_body_fails_in_the_sdk_too():
    body, header = _signed(EVENT)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body + b" ", header, SECRET)


@VERIFIERS
def test_stale_signatures_and_missing_secrets_fail_closed(gateway: StripeGateway, verify: str):
    check = getattr(gateway, verify)
    body, header = _signed(EVENT, at=int(time.time()) - 301)
    with pytest.raises(SignatureVerificationFailed):
        check(body, header, [SECRET])
    body, header = _signed(EVENT)
    with pytest.raises(SignatureVerificationFailed):
        check(body, header, [])
    with pytest.raises(SignatureVerificationFailed):
        check(body, header, [""])


def test_a_signed_payload_that_is_not_an_event_is_refused(gateway: StripeGateway):
    body, header = _signed({"id": "evt_1"})
    with pytest.raises(SignatureVerificationFailed, match="not a Stripe event"):
        gateway.verify_webhook(body, header, [SECRET])
