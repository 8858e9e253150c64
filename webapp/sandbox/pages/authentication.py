"""The 3-D Secure test page: what the cardholder's bank shows for a card that needs
authentication. Like Stripe's test page, it offers "Complete" and "Fail" authentication."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from webapp.catalog import format_money
from webapp.sandbox import operations
from webapp.sandbox.operations import hosted
from webapp.sandbox.pages.blueprint import bp
from webapp.sandbox.pages.common import EmptyForm, sandbox
from webapp.sandbox.store import Store
from webapp.sandbox.wire import StripeAPIError


def _back(challenge: dict[str, Any]) -> str:
    """The page the payment was started on."""
    if challenge["purpose"] == "checkout":
        return url_for("sandbox.checkout", session_id=challenge["target"])
    return url_for("sandbox.hosted_invoice", token=challenge["target"])


def _last4(store: Store, challenge: dict[str, Any]) -> str:
    if challenge["card"]:
        return challenge["card"]["number"][-4:]
    pm = store.find(challenge["payment_method"] or "") or {}
    return (pm.get("card") or {}).get("last4", "")


@bp.route("/3ds/<challenge_id>", methods=["GET", "POST"])
def three_d_secure(challenge_id: str) -> Response | str:
    """Show the challenge; on POST, complete or fail it and return to the payment's page."""
    form = EmptyForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400)
        action = request.form.get("action")
        if action not in ("complete", "fail"):
            abort(400)
        return _answer(challenge_id, action)
    with sandbox().store() as store:
        challenge = hosted.get_challenge(store, challenge_id)
        if challenge is None:
            abort(404)
        last4 = _last4(store, challenge)
    return render_template(
        "sandbox/three_d_secure.html",
        challenge=challenge,
        amount=format_money(challenge["amount"], challenge["currency"]),
        last4=last4,
        form=form,
        back=_back(challenge),
    )


def _answer(challenge_id: str, action: str) -> Response:
    back = url_for("sandbox.three_d_secure", challenge_id=challenge_id)
    try:
        with sandbox().store() as store:
            challenge = hosted.get_challenge(store, challenge_id, for_update=True)
            if challenge is None:
                abort(404)
            back = _back(challenge)
            if challenge["status"] != "pending":
                flash("This authentication was already answered.", "error")
                return redirect(back, code=303)
            hosted.use_challenge(store, challenge, action)
            if challenge["purpose"] == "checkout":
                return _answer_checkout(store, challenge, action, back)
            return _answer_invoice(store, challenge, action, back)
    except StripeAPIError as exc:
        flash(exc.message, "error")
        return redirect(back, code=303)


def _answer_checkout(store: Store, challenge: dict[str, Any], action: str, back: str) -> Response:
    if action == "fail":
        # Nothing is created: the customer is back on the Checkout page to try another card.
        flash(hosted.AUTHENTICATION_FAILED_MESSAGE, "error")
        return redirect(back, code=303)
    card = challenge["card"]
    session = operations.pay_checkout_session(
        store,
        challenge["target"],
        card_number=card["number"],
        exp_month=card["exp_month"],
        exp_year=card["exp_year"],
        authenticated=True,
        terms_accepted=bool(challenge.get("terms_accepted")),
    )
    return redirect(session["success_url"], code=303)


def _answer_invoice(store: Store, challenge: dict[str, Any], action: str, back: str) -> Response:
    invoice = hosted.linked_invoice(store, challenge["target"], for_update=True)
    pm = store.find(challenge["payment_method"] or "")
    if invoice is None or pm is None:
        abort(404)
    if invoice["status"] != "open":
        flash(f"This invoice is {invoice['status']}; it can no longer be paid.", "error")
        return redirect(back, code=303)
    if action == "fail":
        hosted.fail_invoice_authentication(store, invoice, pm)
        flash(hosted.AUTHENTICATION_FAILED_MESSAGE, "error")
    elif hosted.pay_on_hosted_page(store, invoice, pm, authenticated=True):
        flash("Payment complete. Thank you!", "success")
    else:
        pi = store.find(invoice.get("_payment_intent") or "") or {}
        flash((pi.get("last_payment_error") or {}).get("message") or "Payment failed.", "error")
    return redirect(back, code=303)
