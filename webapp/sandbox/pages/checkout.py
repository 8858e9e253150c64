"""Stripe's hosted Checkout page: the order, a promotion code (when the session allows one), a
card form, and "Pay"."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import abort, redirect, render_template, url_for
from werkzeug.wrappers import Response

from webapp.catalog import format_money
from webapp.sandbox import operations
from webapp.sandbox.operations import hosted
from webapp.sandbox.pages.blueprint import bp
from webapp.sandbox.pages.common import (
    CardForm,
    EmptyForm,
    PromotionCodeForm,
    date,
    describe_price,
    sandbox,
)
from webapp.sandbox.store import Store
from webapp.sandbox.wire import StripeAPIError


@bp.route("/checkout/<session_id>", methods=["GET", "POST"])
def checkout(session_id: str) -> Response | str | tuple[str, int]:
    """Stripe's hosted Checkout: the order, a card form, and "Pay"."""
    form = CardForm()
    error = None
    if form.validate_on_submit():
        number, month, year = form.card()
        try:
            with sandbox().store() as store:
                if operations.needs_authentication(number):
                    # The bank asks for 3-D Secure first: its test page, then the payment.
                    challenge = _challenge(store, session_id, number, month, year)
                    return redirect(
                        url_for("sandbox.three_d_secure", challenge_id=challenge["id"]), code=303
                    )
                session = operations.pay_checkout_session(
                    store, session_id, card_number=number, exp_month=month, exp_year=year
                )
            return redirect(session["success_url"], code=303)
        except operations.CardError as exc:
            error = exc.message
        except StripeAPIError as exc:
            if exc.status == 404:
                abort(404)
            error = exc.message
    return _page(session_id, form=form, error=error, status=402 if error else 200)


@bp.post("/checkout/<session_id>/trial")
def start_trial(session_id: str) -> Response | tuple[str, int]:
    """A card-less trial: "Start trial" without a card, which the session must allow."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        with sandbox().store() as store:
            session = operations.pay_checkout_session(store, session_id, card_number=None)
        return redirect(session["success_url"], code=303)
    except StripeAPIError as exc:
        if exc.status == 404:
            abort(404)
        return _page(session_id, error=exc.message, status=400)


@bp.route("/checkout/<session_id>/promotion-code", methods=["POST"])
def apply_promotion_code(session_id: str) -> Response | tuple[str, int]:
    """ "Add promotion code": the discounted total, or why the code cannot be used."""
    promo_form = PromotionCodeForm()
    if not promo_form.validate_on_submit():
        return _page(session_id, promo_form=promo_form, status=400)
    try:
        with sandbox().store() as store:
            operations.apply_promotion_code(store, session_id, promo_form.code.data or "")
    except StripeAPIError as exc:
        if exc.status == 404:
            abort(404)
        promo_form.code.errors = [exc.message]
        return _page(session_id, promo_form=promo_form, status=400)
    return redirect(url_for("sandbox.checkout", session_id=session_id), code=303)


@bp.route("/checkout/<session_id>/promotion-code/remove", methods=["POST"])
def remove_promotion_code(session_id: str) -> Response | tuple[str, int]:
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        with sandbox().store() as store:
            operations.remove_promotion_code(store, session_id)
    except StripeAPIError as exc:
        if exc.status == 404:
            abort(404)
        return _page(session_id, error=exc.message, status=400)
    return redirect(url_for("sandbox.checkout", session_id=session_id), code=303)


def _page(
    session_id: str,
    *,
    form: CardForm | None = None,
    promo_form: PromotionCodeForm | None = None,
    error: str | None = None,
    status: int = 200,
) -> tuple[str, int]:
    with sandbox().store() as store:
        operations.expire_overdue_sessions(store)
        session = store.find(session_id)
        if session is None or session.get("object") != "checkout.session":
            abort(404)
        price = operations.session_price(store, session)
        email = session.get("customer_email")
        if session.get("customer"):
            email = (store.find(session["customer"]) or {}).get("email") or email
        order = describe_price(store, price)
        discount = _discount(store, session)
        trial = _trial(store, session)
    return render_template(
        "sandbox/checkout.html",
        session=session,
        order=order,
        email=email,
        form=form or CardForm(formdata=None),
        promo_form=promo_form or PromotionCodeForm(formdata=None),
        remove_form=EmptyForm(formdata=None),
        discount=discount,
        trial=trial,
        card_optional=operations.card_optional(session),
        trial_form=EmptyForm(formdata=None),
        error=error,
    ), status


def _trial(store: Store, session: dict[str, Any]) -> dict[str, Any] | None:
    """What the page says of the session's free trial: its length, today's $0 and the first
    charge after it (the discounted price when a promotion code applies)."""
    days = session.get("_trial_period_days")
    if not days:
        return None
    price = operations.session_price(store, session)
    then = price["unit_amount"] * session["_line_items"][0]["quantity"]
    then -= session["total_details"]["amount_discount"]
    interval = price["recurring"]["interval"]
    return {
        "days": days,
        "due_today": format_money(0, session["currency"]),
        "then": f"{format_money(then, session['currency'])} / {interval}",
        "starts": date(store.now() + days * 86400),
    }


def _discount(store: Store, session: dict[str, Any]) -> dict[str, Any] | None:
    """What the page says of the promotion code applied to the session, if any."""
    if not session.get("discounts"):
        return None
    applied = session["discounts"][0]
    promo = store.find(applied["promotion_code"]) or {}
    coupon = store.find(applied["coupon"]) or {}
    currency = session["currency"]
    if coupon.get("percent_off") is not None:
        what = f"{coupon['percent_off']:g}% off"
    else:
        what = f"{format_money(coupon.get('amount_off') or 0, currency)} off"
    duration = coupon.get("duration")
    if duration == "once":
        when = "the first payment"
    elif duration == "repeating":
        months = coupon.get("duration_in_months")
        when = f"{months} month{'s' if months != 1 else ''}"
    else:
        when = "every payment"
    return {
        "code": promo.get("code", ""),
        "label": f"{what}, {when}",
        "amount": format_money(-session["total_details"]["amount_discount"], currency),
        "total": format_money(session["amount_total"], currency),
    }


def _challenge(store: Store, session_id: str, number: str, month: int, year: int):
    """A 3-D Secure challenge for paying the session with this card, once the card and the
    session are known to be payable."""
    session = operations.open_session(store, session_id)
    today = datetime.fromtimestamp(store.now(), UTC)
    operations.check_card(number, month, year, today.year, today.month)
    price = operations.session_price(store, session)
    return hosted.new_challenge(
        store,
        purpose="checkout",
        target=session_id,
        # What the card will be charged: the total after a promotion code.
        amount=session["amount_total"]
        if session.get("amount_total") is not None
        else price["unit_amount"] * session["_line_items"][0]["quantity"],
        currency=price["currency"],
        card={"number": number, "exp_month": month, "exp_year": year},
    )
