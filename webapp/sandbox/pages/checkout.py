"""Stripe's hosted Checkout page: the order, a promotion code (when the session allows one), a
card form, and "Pay"."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import abort, redirect, render_template, url_for
from markupsafe import Markup
from werkzeug.wrappers import Response

from webapp.catalog import format_money
from webapp.markup import render_markdown
from webapp.sandbox import operations
from webapp.sandbox.operations import hosted
from webapp.sandbox.pages.blueprint import bp
from webapp.sandbox.pages.common import (
    CardForm,
    EmptyForm,
    PromotionCodeForm,
    TrialForm,
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
        terms_accepted = bool(form.accept_terms.data)
        try:
            with sandbox().store() as store:
                if operations.needs_authentication(number):
                    # The bank asks for 3-D Secure first: its test page, then the payment.
                    challenge = _challenge(store, session_id, number, month, year, terms_accepted)
                    return redirect(
                        url_for("sandbox.three_d_secure", challenge_id=challenge["id"]), code=303
                    )
                session = operations.pay_checkout_session(
                    store,
                    session_id,
                    card_number=number,
                    exp_month=month,
                    exp_year=year,
                    terms_accepted=terms_accepted,
                )
            return redirect(session["success_url"], code=303)
        except operations.TermsNotAccepted as exc:
            form.accept_terms.errors = [str(exc)]
            return _page(session_id, form=form, status=400)
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
    trial_form = TrialForm()
    if not trial_form.validate_on_submit():
        abort(400)
    try:
        with sandbox().store() as store:
            session = operations.pay_checkout_session(
                store,
                session_id,
                card_number=None,
                terms_accepted=bool(trial_form.accept_terms.data),
            )
        return redirect(session["success_url"], code=303)
    except operations.TermsNotAccepted as exc:
        trial_form.accept_terms.errors = [str(exc)]
        return _page(session_id, trial_form=trial_form, status=400)
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
    billing_form: Any = None,
    trial_form: TrialForm | None = None,
    error: str | None = None,
    status: int = 200,
) -> tuple[str, int]:
    from webapp.sandbox.pages.checkout_tax import BillingDetailsForm, tax_summary

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
        tax = tax_summary(store, session)
        if billing_form is None:
            billing_form = BillingDetailsForm(formdata=None)
            billing_form.prefill(session, store.find(session.get("customer") or ""))
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
        terms_label=_terms_label(store, session),
        tax=tax,
        billing_form=billing_form,
        trial=trial,
        card_optional=operations.card_optional(session),
        trial_form=trial_form or TrialForm(formdata=None),
        error=error,
    ), status


def _terms_label(store: Store, session: dict[str, Any]) -> Markup | None:
    """The words beside the terms checkbox: the session's own
    (`custom_text.terms_of_service_acceptance`, Markdown links and emphasis), else a link to
    the terms URL of the account's Public details, which for the sandbox is this site's own
    terms page."""
    if not operations.requires_terms(session):
        return None
    custom = (session.get("custom_text") or {}).get("terms_of_service_acceptance")
    default = f"I agree to the [Terms of Service]({store.public_base}terms)."
    text = custom["message"] if custom else default
    # A label holds phrasing content only: the words without their paragraph.
    html = str(render_markdown(text)).strip().removeprefix("<p>").removesuffix("</p>")
    return Markup(html)  # noqa: S704 -- sanitised by render_markdown


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


def _challenge(
    store: Store, session_id: str, number: str, month: int, year: int, terms_accepted: bool
):
    """A 3-D Secure challenge for paying the session with this card, once the card, the
    session and the buyer's consent to the terms (if asked) are known to be payable."""
    session = operations.open_session(store, session_id)
    operations.check_terms(session, terms_accepted)
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
        terms_accepted=terms_accepted,
    )
