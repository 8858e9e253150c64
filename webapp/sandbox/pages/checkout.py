"""Stripe's hosted Checkout page: the order, a card form, and "Pay"."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import abort, redirect, render_template, url_for
from werkzeug.wrappers import Response

from webapp.sandbox import operations
from webapp.sandbox.operations import hosted
from webapp.sandbox.pages.blueprint import bp
from webapp.sandbox.pages.common import CardForm, describe_price, sandbox
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
        amount=price["unit_amount"] * session["_line_items"][0]["quantity"],
        currency=price["currency"],
        card={"number": number, "exp_month": month, "exp_year": year},
    )
