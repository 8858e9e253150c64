"""Stripe's hosted Checkout page: the order, a card form, and "Pay"."""

from __future__ import annotations

from flask import abort, redirect, render_template
from werkzeug.wrappers import Response

from webapp.sandbox import operations
from webapp.sandbox.pages.blueprint import bp
from webapp.sandbox.pages.common import CardForm, describe_price, sandbox
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
    status = 402 if error else 200
    return render_template(
        "sandbox/checkout.html", session=session, order=order, email=email, form=form, error=error
    ), status
