"""Every request parameter the gateway sends, checked against the SDK's own parameter types.

The gateway's client is wrapped in `RecordingClient` (the real SDK, against the sandbox, each call
passed on unchanged); the app's own code paths (catalog sync, a member's checkout through the
site with the checkout options in force, the portal, the success page) and every other gateway
method, called with the parameters its callers in webapp/ use, make their requests. Then each
recorded call's params must fit the TypedDict the SDK declares for that method
(tests/stripe_params.py). A gateway method that talks to Stripe but is not exercised here fails
the coverage check, so a new method cannot escape.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask

from tests.billing.member import Member
from tests.conftest import create_user
from tests.stripe_params import Call, ParamError, RecordingClient, check, params_type
from webapp.billing.switches import confirm_switch, switch_terms
from webapp.catalog import get_catalog
from webapp.checkout_options import CheckoutOptions
from webapp.extensions import db
from webapp.models import User
from webapp.stripe_catalog import (
    PORTAL_MARKER,
    _differences,
    desired_portal_configuration,
    sync_catalog,
)
from webapp.stripe_gateway import InvalidRequest, StripeGateway, get_gateway, plain_metadata

# Gateway methods that never call a Stripe service (they verify signatures locally).
LOCAL_METHODS = {"construct_event", "verify_webhook", "forget_prices"}


def stripe_methods() -> set[str]:
    """The gateway's public methods whose code calls the StripeClient."""
    return {
        name
        for name, member in inspect.getmembers(StripeGateway, inspect.isfunction)
        if not name.startswith("_") and "self.client" in inspect.getsource(member)
    }


@dataclass
class Recording:
    calls: list[Call]
    used: set[str]  # the gateway methods that ran
    failure: BaseException | None  # what stopped the run early (the sandbox refusing a call…)


@pytest.fixture
def recorded(app: Flask) -> Recording:
    """Run the app and every gateway method against the sandbox, recording what was sent. A run
    cut short (the sandbox, like Stripe, refuses an unknown parameter) still has its calls
    checked, so the report names the parameter."""
    with app.app_context():
        gateway = get_gateway()
        recorder = RecordingClient(gateway.client)
        gateway.client = recorder  # type: ignore[assignment]
        used: set[str] = set()
        for name in stripe_methods():
            method = getattr(gateway, name)

            def tracked(*args: Any, __name: str = name, __method: Any = method, **kwargs: Any):
                used.add(__name)
                return __method(*args, **kwargs)

            setattr(gateway, name, tracked)
        failure = None
        try:
            _exercise(app, gateway)
        except Exception as exc:  # reported by the tests below, after the parameters
            failure = exc
        return Recording(recorder.calls, used, failure)


# Every checkout option on, so each of their parameters is checked.
_all_options = CheckoutOptions(
    allow_promotion_codes=True,
    consent_collection=True,
    automatic_tax=True,
    tax_id_collection=True,
    billing_address_collection=True,
    free_trials=True,
    trials_without_card=True,
)


def _exercise(app: Flask, gateway: StripeGateway) -> None:
    # The site: catalog sync on first use, sign-up, checkout with the options in force, the
    # hosted page, the success page, the portal.
    member = Member(app, create_user(app))
    member.subscribe("professional", "monthly")
    member.portal("cancel", reason="too_expensive")
    sub = member.live()
    customer_id = member.customer_id()
    assert sub is not None and customer_id
    # Switching plan from our confirmation page (billing.switches): an upgrade now, then a
    # downgrade at the period end, each previewed first. (A fresh app context: the requests so
    # far share this one's `g`, where Flask-Login keeps the member it loaded.)
    with app.app_context():
        email = "switch@example.com"
        switcher = Member(app, create_user(app, email=email), email=email)
        switcher.subscribe("starter", "monthly")
        user = db.session.get(User, switcher.user_id)
        for plan in ("professional", "starter"):
            terms = switch_terms(user, plan, "monthly")
            shown = terms.amount_now if terms.immediate else terms.renewal_amount
            confirm_switch(
                user, plan, "monthly", proration_date=terms.proration_date, shown_amount=shown or 0
            )
    # Catalog sync's update paths (a second sync changes nothing, so call them as it does).
    catalog = get_catalog()
    sync_catalog(gateway, catalog)
    _problems, by_plan, by_key = _differences(gateway, catalog)
    products = gateway.list_products()
    gateway.update_product(products[0].id, metadata=plain_metadata(products[0].metadata))
    # The plans' recurring prices (the packs' one-time prices are exercised below).
    prices = [p for p in gateway.list_prices(active=True) if p.recurring is not None]
    config_id = gateway.managed_portal_configuration_id(PORTAL_MARKER)
    assert config_id
    desired = desired_portal_configuration(catalog, by_plan, by_key)
    gateway.update_portal_configuration(config_id, {"features": desired["features"]})
    gateway.update_price(prices[0].id, metadata=plain_metadata(prices[0].metadata))
    gateway.retrieve_price(prices[0].id)
    spare = gateway.create_price(
        product_id=products[0].id,
        unit_amount=1,
        currency="usd",
        interval="month",
        lookup_key="params_spare",
        metadata={"plan_id": "spare", "cycle": "monthly"},
    )
    gateway.archive_price(spare.id)
    # A one-time price (credit packs: no `recurring`).
    one_time = gateway.create_price(
        product_id=products[0].id,
        unit_amount=1,
        currency="usd",
        interval=None,
        lookup_key="params_spare_once",
        metadata={"pack_id": "pkg_spare"},
    )
    gateway.archive_price(one_time.id)
    gateway.create_product(name="Spare", metadata={"spare": "1"})
    # Promotion codes.
    coupon = gateway.create_coupon(percent_off=20, duration="once", name="20% off")
    gateway.create_coupon(
        amount_off=500, currency="usd", duration="repeating", duration_in_months=3
    )
    gateway.retrieve_coupon(coupon.id)
    code = gateway.create_promotion_code(
        coupon_id=coupon.id,
        code="PARAMS20",
        max_redemptions=5,
        expires_at=sub.start_date + 30 * 86400,
        first_time_transaction=True,
    )
    gateway.find_promotion_codes("PARAMS20")
    gateway.set_promotion_code_active(code.id, False)
    # Subscriptions and invoices, as billing reads them.
    gateway.retrieve_subscription(sub.id, expand=["latest_invoice"])
    gateway.list_subscriptions(customer_id)
    invoice = gateway.list_invoices(customer_id, subscription_id=sub.id)[0]
    gateway.retrieve_invoice(invoice.id)
    gateway.payment_awaits_authentication(invoice.id)
    gateway.invoice_lines(invoice)
    payment = gateway.invoice_payments(invoice.id)[0]
    intent = payment.payment.payment_intent
    gateway.invoice_for_payment_intent(intent)
    gateway.charges_of(intent)
    gateway.credit_notes_of(invoice.id)
    gateway.disputes_of(intent)
    gateway.create_refund(  # as billing.duplicates refunds
        payment_intent_id=intent,
        reason="duplicate",
        metadata={"reason": "duplicate_subscription", "subscription": sub.id},
        idempotency_key="params-refund",
        amount=100,
    )
    gateway.update_subscription(sub.id, metadata={"duplicate_of": "sub_other"})
    gateway.cancel_subscription(  # as billing.closing and billing.duplicates cancel
        sub.id,
        prorate=False,
        invoice_now=False,
        cancellation_details={"comment": "Closing the account."},
    )
    # Sessions and customers.
    # A credit pack's payment-mode session, with the terms checkbox (billing/packs.py).
    gateway.create_pack_checkout_session(
        customer_id=customer_id,
        price_id=gateway.price_for("pack_pkg_pro").id,
        user_id=member.user_id,
        pack_id="pkg_pro",
        credits=500,
        pack_name="Pro Pack",
        success_url="http://localhost/checkout/pack/success?session_id={CHECKOUT_SESSION_ID}",
        cancel_url="http://localhost/account",
        idempotency_key="params-pack-session",
        option_params={
            k: v
            for k, v in _all_options.session_params(terms_url="http://localhost/terms").items()
            if k in ("consent_collection", "custom_text")
        },
    )
    session = gateway.create_checkout_session(
        customer_id=customer_id,
        price_id=prices[0].id,
        user_id=member.user_id,
        plan_id="starter",
        cycle="monthly",
        success_url="http://localhost/checkout/success?session_id={CHECKOUT_SESSION_ID}",
        cancel_url="http://localhost/pricing",
        idempotency_key="params-session",
        # Every checkout option on, a card-less trial included.
        option_params={
            **_all_options.session_params(terms_url="http://localhost/terms"),
            **_all_options.trial_params(14),
        },
    )
    gateway.retrieve_checkout_session(session.id, expand=["line_items"])
    gateway.expire_checkout_session(session.id)
    gateway.create_portal_session(
        customer_id=customer_id, return_url="http://localhost/account", configuration_id=config_id
    )
    # Company details (billing.company), as the account page's form sends them.
    gateway.update_customer_details(
        customer_id,
        name="Params GmbH",
        address={
            "country": "DE",
            "line1": "Hauptstr. 1",
            "line2": "",
            "city": "Berlin",
            "postal_code": "10115",
            "state": "",
        },
    )
    tax_id = gateway.create_tax_id(customer_id, tax_type="eu_vat", value="DE123456789")
    gateway.retrieve_customer_details(customer_id)
    gateway.delete_tax_id(customer_id, tax_id.id)
    gateway.update_customer_details(customer_id, name=None, address=None)
    gateway.customer_is_deleted(customer_id)
    gateway.delete_customer(customer_id)
    # Reconciliation (billing.reconcile): the events since a moment, and the undelivered ones.
    types = ["invoice.paid", "customer.subscription.updated"]
    assert list(gateway.list_events(created_after=0, types=types))
    list(gateway.list_events(created_after=0, types=types, undelivered_only=True))
    try:
        gateway.price_for("no_such_key")
    except InvalidRequest:
        pass
    except Exception:  # ResourceMissing is what it raises; any is fine here
        pass


def test_every_parameter_fits_the_sdk_types(recorded: Recording) -> None:
    calls = recorded.calls
    problems = []
    for call in calls:
        if call.params is None:
            continue
        try:
            check(call.params, params_type(call.method), call.operation)
        except ParamError as exc:
            problems.append(str(exc))
    assert problems == [], "\n".join(problems)
    assert recorded.failure is None, f"the run stopped early: {recorded.failure!r}"
    operations = {call.operation for call in calls}
    assert "v1.checkout.sessions.create" in operations
    assert "v1.promotion_codes.create" in operations
    sent = [call for call in calls if call.params is not None]
    assert any(call.params.get("allow_promotion_codes") is True for call in sent)
    assert any(call.params.get("automatic_tax") == {"enabled": True} for call in sent)
    assert any(call.params.get("customer_update") for call in sent)


def test_every_gateway_method_is_exercised(recorded: Recording) -> None:
    assert recorded.failure is None, f"the run stopped early: {recorded.failure!r}"
    assert stripe_methods() - LOCAL_METHODS - recorded.used == set()


# --- the checker itself: it must refuse what Stripe would -----------------------------------


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"mode": "subscription", "allow_promotion_code": True}, "unknown parameter"),
        ({"mode": "subscriptions"}, "is not one of"),
        ({"mode": "subscription", "line_items": [{"prise": "p"}]}, "unknown parameter 'prise'"),
        ({"mode": "subscription", "allow_promotion_codes": "yes"}, "expected a boolean"),
        ({"mode": "subscription", "metadata": {"a": 1}}, "expected a string"),
        ({"mode": "subscription", "subscription_data": {"metadata": "x"}}, "params"),
        ({"consent_collection": {"terms_of_service": "requried"}}, "is not one of"),
        ({"custom_text": {"terms_of_service": {"message": "x"}}}, "unknown parameter"),
        ({"mode": "subscription", "automatic_tax": {"enable": True}}, "unknown parameter"),
        ({"mode": "subscription", "customer_update": {"adress": "auto"}}, "unknown parameter"),
        ({"mode": "subscription", "billing_address_collection": "always"}, "is not one of"),
    ],
)
def test_the_checker_refuses(params: dict[str, Any], problem: str) -> None:
    import stripe

    method = stripe.StripeClient("sk_test_x").v1.checkout.sessions.create
    with pytest.raises(ParamError, match=problem):
        check(params, params_type(method))


def test_promotion_code_params_need_their_promotion() -> None:
    import stripe

    method = stripe.StripeClient("sk_test_x").v1.promotion_codes.create
    with pytest.raises(ParamError, match="missing required parameter 'promotion'"):
        check({"code": "X"}, params_type(method))
    with pytest.raises(ParamError, match="is not one of"):
        check({"promotion": {"type": "coupons", "coupon": "c"}}, params_type(method))
