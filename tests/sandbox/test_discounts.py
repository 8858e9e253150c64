"""Coupons and promotion codes in the sandbox, through the real SDK and the hosted Checkout page:
the objects and their validation, the code field's refusals, and discounts on the invoices for
the coupon's duration (once, repeating, forever)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask

from tests.sandbox import helpers
from tests.sandbox.helpers import advance, client_of, events_of, form_token, pay, raw
from webapp.stripe_gateway import InvalidRequest, StripeGateway

STARTER = 499  # starter_monthly, cents


def apply_code(app: Flask, session_url: str, code: str):
    """Type a code into "Add promotion code" and press Apply."""
    client = client_of(app)
    path = urlsplit(session_url).path
    token, html = form_token(client, path)
    assert "Add promotion code" in html
    return client.post(f"{path}/promotion-code", data={"csrf_token": token, "code": code})


def promo(gateway: StripeGateway, code: str = "SPRING20", **coupon: Any):
    coupon = {"percent_off": 20, "duration": "once", **coupon}
    made = gateway.create_coupon(**coupon)
    return gateway.create_promotion_code(coupon_id=made.id, code=code)


def subscribe_with(app: Flask, gateway: StripeGateway, code: str, key: str = "1") -> Any:
    session = new_checkout(gateway, key=key, email=f"{key}@example.com")
    applied = apply_code(app, session.url, code)
    assert applied.status_code == 303, applied.get_data(as_text=True)[:2000]
    paid = pay(client_of(app), session.url)
    assert paid.status_code == 303, paid.get_data(as_text=True)[:2000]
    done = gateway.retrieve_checkout_session(session.id)
    return gateway.retrieve_subscription(done.subscription)


def new_checkout(gateway: StripeGateway, **kwargs: Any) -> Any:
    """A session as billing makes it with `allow_promotion_codes` on (unless told otherwise)."""
    kwargs.setdefault("option_params", {"allow_promotion_codes": True})
    return helpers.new_checkout(gateway, **kwargs)


def invoices(gateway: StripeGateway, sub: Any) -> list[Any]:
    listed = gateway.list_invoices(sub.customer, subscription_id=sub.id)
    return sorted(listed, key=lambda invoice: invoice.created)


# --- objects -------------------------------------------------------------------------------------


def test_coupon_and_promotion_code_shapes(gateway: StripeGateway) -> None:
    coupon = gateway.create_coupon(
        percent_off=25.5, duration="repeating", duration_in_months=3, max_redemptions=10
    )
    assert (coupon.object, coupon.percent_off, coupon.duration) == ("coupon", 25.5, "repeating")
    assert (coupon.duration_in_months, coupon.valid, coupon.times_redeemed) == (3, True, 0)
    code = gateway.create_promotion_code(
        coupon_id=coupon.id, code="FALL-25", max_redemptions=5, first_time_transaction=True
    )
    assert code.id.startswith("promo_") and code.code == "FALL-25" and code.active
    assert code.promotion.type == "coupon" and code.promotion.coupon == coupon.id
    assert code.restrictions.first_time_transaction is True
    assert [found.id for found in gateway.find_promotion_codes("fall-25")] == [code.id]
    assert set(raw(code)) == set(_fixture("promotion_code"))
    assert set(raw(coupon)) == set(_fixture("coupon")) | {"applies_to"}
    off = gateway.create_coupon(amount_off=500, currency="usd", duration="forever", name="$5")
    assert (off.amount_off, off.currency, off.percent_off) == (500, "usd", None)


def _fixture(name: str) -> dict[str, Any]:
    import json
    from pathlib import Path

    return json.loads(Path("/work/shared/stripe/fixtures3.json").read_text())["resources"][name]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"duration": "once"}, "exactly one of percent_off or amount_off"),
        ({"percent_off": 10, "amount_off": 5, "duration": "once"}, "exactly one"),
        ({"amount_off": 500, "duration": "once"}, "currency"),
        ({"percent_off": 120, "duration": "once"}, "at most 100"),
        ({"percent_off": 10, "duration": "repeating"}, "duration_in_months"),
        ({"percent_off": 10, "duration": "once", "duration_in_months": 2}, "only be passed"),
        ({"percent_off": 10, "duration": "weekly"}, "Invalid duration"),
        ({"percent_off": 10, "duration": "once", "redeem_by": 1}, "future"),
    ],
)
def test_coupon_validation(gateway: StripeGateway, params: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        gateway.create_coupon(**params)


def test_promotion_code_validation(gateway: StripeGateway) -> None:
    coupon = gateway.create_coupon(percent_off=10, duration="once", max_redemptions=2)
    gateway.create_promotion_code(coupon_id=coupon.id, code="ONLY")
    with pytest.raises(InvalidRequest, match="already exists"):
        gateway.create_promotion_code(coupon_id=coupon.id, code="only")
    with pytest.raises(InvalidRequest, match="greater than the coupon"):
        gateway.create_promotion_code(coupon_id=coupon.id, code="MORE", max_redemptions=3)
    with pytest.raises(InvalidRequest, match="letters, digits and dashes"):
        gateway.create_promotion_code(coupon_id=coupon.id, code="no spaces")
    with pytest.raises(InvalidRequest, match="No such coupon"):
        gateway.create_promotion_code(coupon_id="nope", code="NOPE")


# --- the hosted page -----------------------------------------------------------------------------


def test_code_field_shows_the_discounted_total(app: Flask, gateway: StripeGateway) -> None:
    promo(gateway)
    session = new_checkout(gateway)
    assert session.allow_promotion_codes is True
    applied = apply_code(app, session.url, "spring20")
    assert applied.status_code == 303
    html = client_of(app).get(urlsplit(session.url).path).get_data(as_text=True)
    assert "SPRING20" in html and "-$1.00" in html and "$3.99" in html
    again = gateway.retrieve_checkout_session(session.id)
    assert (again.amount_subtotal, again.amount_total) == (STARTER, STARTER - 100)
    assert again.total_details.amount_discount == 100
    assert again.discounts[0].promotion_code.startswith("promo_")


def test_no_code_field_unless_the_session_allows_codes(app: Flask, gateway: StripeGateway) -> None:
    promo(gateway)
    session = new_checkout(gateway, option_params={})
    html = client_of(app).get(urlsplit(session.url).path).get_data(as_text=True)
    assert "Add promotion code" not in html
    path = urlsplit(session.url).path
    token, _ = form_token(client_of(app), path)
    refused = client_of(app).post(
        f"{path}/promotion-code", data={"csrf_token": token, "code": "SPRING20"}
    )
    assert refused.status_code == 400 and "This code is invalid." in refused.get_data(as_text=True)


def test_codes_that_cannot_be_used(app: Flask, gateway: StripeGateway) -> None:
    now = gateway.client.v1.coupons.create(params={"percent_off": 5, "duration": "once"}).created
    inactive = promo(gateway, "OLD")
    gateway.set_promotion_code_active(inactive.id, False)
    soon = gateway.create_coupon(percent_off=10, duration="once")
    gateway.create_promotion_code(coupon_id=soon.id, code="SOON", expires_at=now + 3600)
    once = gateway.create_coupon(percent_off=10, duration="once", max_redemptions=1)
    gateway.create_promotion_code(coupon_id=once.id, code="ONEOFF")
    first = gateway.create_coupon(percent_off=10, duration="once")
    gateway.create_promotion_code(coupon_id=first.id, code="WELCOME", first_time_transaction=True)
    # Spends ONEOFF, and makes a paying customer.
    first_customer = subscribe_with(app, gateway, "ONEOFF", key="first")
    advance(app, seconds=7200)  # SOON expires

    session = new_checkout(gateway, key="2", email="2@example.com")
    expected = {
        "NOSUCHCODE": "This code is invalid.",
        "OLD": "This code is no longer active.",
        "SOON": "This code has expired.",
        "ONEOFF": "This code has been fully redeemed.",
    }
    for code, message in expected.items():
        refused = apply_code(app, session.url, code)
        assert refused.status_code == 400, code
        assert message in refused.get_data(as_text=True), code
    assert gateway.retrieve_checkout_session(session.id).amount_total == STARTER

    # WELCOME is for first-time customers: the one who already paid cannot use it.
    customer = gateway.list_invoices(first_customer.customer)[0].customer
    repeat = gateway.create_checkout_session(
        customer_id=customer,
        price_id=gateway.price_for("starter_monthly").id,
        user_id=1,
        plan_id="starter",
        cycle="monthly",
        success_url="http://localhost/checkout/success",
        cancel_url="http://localhost/pricing",
        idempotency_key="cs-repeat",
        option_params={"allow_promotion_codes": True},
    )
    refused = apply_code(app, repeat.url, "WELCOME")
    assert "only for first-time customers" in refused.get_data(as_text=True)


def test_a_code_spent_meanwhile_stops_the_payment(app: Flask, gateway: StripeGateway) -> None:
    coupon = gateway.create_coupon(percent_off=50, duration="once", max_redemptions=1)
    gateway.create_promotion_code(coupon_id=coupon.id, code="LAST")
    first = new_checkout(gateway, key="a", email="a@example.com")
    second = new_checkout(gateway, key="b", email="b@example.com")
    assert apply_code(app, first.url, "LAST").status_code == 303
    assert apply_code(app, second.url, "LAST").status_code == 303
    assert pay(client_of(app), first.url).status_code == 303
    refused = pay(client_of(app), second.url)
    assert refused.status_code == 402
    assert "This code has been fully redeemed." in refused.get_data(as_text=True)
    assert gateway.retrieve_checkout_session(second.id).status == "open"
    assert gateway.retrieve_coupon(coupon.id).times_redeemed == 1


# --- discounts on invoices ---------------------------------------------------------------------


def test_once_discounts_the_first_invoice_only(app: Flask, gateway: StripeGateway) -> None:
    code = promo(gateway)
    sub = subscribe_with(app, gateway, "SPRING20")
    # The subscription was created with the discount; a `once` one is spent on the first
    # invoice and leaves the subscription then.
    created = events_of(gateway, "customer.subscription.created")[0].data.object
    assert len(created.discounts) == 1
    assert sub.discounts == []
    first = invoices(gateway, sub)[0]
    discount = gateway.client.v1.invoices.retrieve(
        first.id, params={"expand": ["discounts"]}
    ).discounts[0]
    assert discount.id == created.discounts[0]
    assert discount.promotion_code == code.id and discount.source.coupon == code.promotion.coupon
    assert discount.end is None and discount.subscription == sub.id
    assert (first.subtotal, first.total, first.amount_due, first.amount_paid) == (
        STARTER,
        STARTER - 100,
        STARTER - 100,
        STARTER - 100,
    )
    assert first.discounts == [discount.id]
    assert [(a.amount, a.discount) for a in first.total_discount_amounts] == [(100, discount.id)]
    line = first.lines.data[0]
    assert line.amount == STARTER
    assert [(a.amount, a.discount) for a in line.discount_amounts] == [(100, discount.id)]
    assert gateway.retrieve_subscription(sub.id).discounts == []
    advance(app, days=32)
    second = invoices(gateway, sub)[1]
    assert (second.total, second.amount_paid, second.discounts) == (STARTER, STARTER, [])
    assert gateway.retrieve_coupon(code.promotion.coupon).times_redeemed == 1


def test_repeating_discounts_n_months(app: Flask, gateway: StripeGateway) -> None:
    promo(gateway, "THREE", percent_off=50, duration="repeating", duration_in_months=3)
    sub = subscribe_with(app, gateway, "THREE")
    for _ in range(4):
        advance(app, days=31)
    paid = [invoice.amount_paid for invoice in invoices(gateway, sub)]
    half = STARTER - round(STARTER / 2 + 0.001)  # 249.5 rounds half up to 250 off
    assert paid == [half, half, half, STARTER, STARTER]


def test_forever_amount_off(app: Flask, gateway: StripeGateway) -> None:
    promo(gateway, "FIVE", amount_off=600, currency="usd", duration="forever", percent_off=None)
    sub = subscribe_with(app, gateway, "FIVE")
    advance(app, days=31)
    advance(app, days=31)
    # $6 off a $4.99 invoice takes it to zero (never below), every month; a $0 invoice is paid.
    assert [(i.total, i.amount_due, i.status) for i in invoices(gateway, sub)] == [
        (0, 0, "paid")
    ] * 3
    assert len(gateway.retrieve_subscription(sub.id).discounts) == 1
