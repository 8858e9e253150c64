"""Discounts never change the credits a plan grants (README, "Promotion codes").

The policy: credits come from the Price's metadata, never from the amount paid. A paid invoice,
at any discount, $0 included, grants its period's credits; an unpaid one grants nothing, as
without a discount. Money that goes back takes credits back in proportion to what was *paid*:
refunding all of a discounted invoice takes back all of its credits.

Through the site and the real SDK against the sandbox: a member checks out on the hosted page
with a promotion code of a random coupon, the test clock runs a few months, and the balance must
be the plan's credits for every month begun, whatever the coupon.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import parse_qs, urlsplit

from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import AuthActions, create_user, csrf_token
from webapp import billing
from webapp.billing.credits import credits_for_invoice
from webapp.catalog import get_catalog
from webapp.stripe_gateway import get_gateway

_serial = itertools.count()

coupons = st.one_of(
    st.fixed_dictionaries(
        {"percent_off": st.sampled_from([1, 20, 33.3, 50, 99.5, 100])},
    ),
    st.fixed_dictionaries(
        {"amount_off": st.integers(min_value=1, max_value=120_000), "currency": st.just("usd")}
    ),
).flatmap(
    lambda off: st.one_of(
        st.just({**off, "duration": "once"}),
        st.just({**off, "duration": "forever"}),
        st.integers(1, 3).map(lambda n: {**off, "duration": "repeating", "duration_in_months": n}),
    )
)


def subscribe_with_code(app: Flask, plan: str, cycle: str, coupon: dict) -> tuple[int, str]:
    """A new member who checks out on the hosted page with a code for `coupon`: their id and
    their Stripe customer."""
    n = next(_serial)
    email = f"discount{n}@example.com"
    user_id = create_user(app, email=email)
    code = f"CODE{n}"
    with app.app_context():
        gateway = get_gateway()
        made = gateway.create_coupon(**coupon)
        gateway.create_promotion_code(coupon_id=made.id, code=code)
    client = app.test_client()
    AuthActions(app, client).login(email=email)
    token = csrf_token(client, "/pricing")
    started = client.post("/checkout", data={"plan": plan, "cycle": cycle, "csrf_token": token})
    assert started.status_code == 303, started.get_data(as_text=True)[:300]
    path = urlsplit(started.headers["Location"]).path
    applied = client.post(
        f"{path}/promotion-code", data={"csrf_token": csrf_token(client, path), "code": code}
    )
    assert applied.status_code == 303, applied.get_data(as_text=True)[:2000]
    card = {"card_number": "4242 4242 4242 4242", "expiry": "12 / 34", "cvc": "123"}
    paid = client.post(path, data={"csrf_token": csrf_token(client, path), **card})
    assert paid.status_code == 303, paid.get_data(as_text=True)[:2000]
    session_id = parse_qs(urlsplit(paid.headers["Location"]).query)["session_id"][0]
    assert client.get(f"/checkout/success?session_id={session_id}").status_code == 200
    with app.app_context():
        customer = get_gateway().retrieve_checkout_session(session_id).customer
    return user_id, customer


def advance_a_month(app: Flask) -> None:
    response = app.test_client().post("/sandbox/control/advance", json={"days": 31})
    assert response.status_code == 200
    with app.app_context():
        billing.grant_due_credits(datetime.fromtimestamp(response.get_json()["now"], UTC))


def expected_off(coupon: dict, amount: int) -> int:
    if "percent_off" in coupon:
        off = Decimal(amount) * Decimal(str(coupon["percent_off"])) / 100
        return min(int(off.quantize(Decimal(1), rounding=ROUND_HALF_UP)), amount)
    return min(coupon["amount_off"], amount)


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    plan=st.sampled_from(["starter", "professional", "business", "agency"]),
    cycle=st.sampled_from(["monthly", "yearly"]),
    coupon=coupons,
    months=st.integers(0, 2),
)
def test_discounts_never_change_credits(
    app: Flask, plan: str, cycle: str, coupon: dict, months: int
) -> None:
    user_id, customer = subscribe_with_code(app, plan, cycle, coupon)
    for _ in range(months):
        advance_a_month(app)
    with app.app_context():
        catalog_plan = get_catalog().plan(plan)
        price = catalog_plan.price(cycle).amount_cents
        invoices = sorted(get_gateway().list_invoices(customer), key=lambda i: i.created)
        # The sandbox took the coupon off as Stripe does (a sanity check on the discount)…
        assert invoices[0].amount_paid == price - expected_off(coupon, price)
        assert all(invoice.status == "paid" for invoice in invoices)
        # …and the credits are the plan's, for every month begun, whatever was paid.
        assert billing.credit_summary(user_id).balance == catalog_plan.monthly_credits * (
            1 + months
        )


def test_refunding_a_discounted_invoice_in_full_takes_all_its_credits(app: Flask) -> None:
    user_id, customer = subscribe_with_code(
        app, "professional", "monthly", {"percent_off": 20, "duration": "once"}
    )
    with app.app_context():
        gateway = get_gateway()
        (invoice,) = gateway.list_invoices(customer)
        assert invoice.amount_paid == 1299 - 260
        assert billing.credit_summary(user_id).balance == 3000
        intent = gateway.invoice_payments(invoice.id)[0].payment.payment_intent
        gateway.create_refund(
            payment_intent_id=intent,
            reason="requested_by_customer",
            metadata={},
            idempotency_key="refund-all",
        )
        assert credits_for_invoice(invoice.id) == 0
        assert billing.credit_summary(user_id).balance == 0


def test_a_free_first_month_still_grants_the_plan(app: Flask) -> None:
    user_id, customer = subscribe_with_code(
        app, "business", "monthly", {"percent_off": 100, "duration": "once"}
    )
    with app.app_context():
        (invoice,) = get_gateway().list_invoices(customer)
        assert (invoice.amount_paid, invoice.status) == (0, "paid")
        assert billing.credit_summary(user_id).balance == 10000
