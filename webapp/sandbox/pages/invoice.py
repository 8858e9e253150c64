"""Stripe's hosted invoice page (`hosted_invoice_url`): the invoice, and while it is open a way
to pay it: with a new card, or by completing the 3-D Secure step its payment waits for."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import abort, flash, redirect, render_template, url_for
from werkzeug.wrappers import Response

from webapp.catalog import format_money
from webapp.sandbox import operations
from webapp.sandbox.operations import hosted
from webapp.sandbox.pages.blueprint import bp
from webapp.sandbox.pages.common import CardForm, EmptyForm, date, sandbox
from webapp.sandbox.store import Store


def _view(store: Store, invoice: dict[str, Any]) -> dict[str, Any]:
    """What the page shows of an invoice."""
    pi = store.find(invoice.get("_payment_intent") or "") or {}
    waiting = pi.get("status") == "requires_action"
    card = store.find(pi.get("payment_method") or "") if waiting else None
    customer = store.find(invoice["customer"]) or {}
    return {
        "number": invoice["number"],
        "status": invoice["status"],
        "email": invoice["customer_email"] or customer.get("email"),
        "account": invoice["account_name"],
        "issued": date(invoice["status_transitions"]["finalized_at"] or invoice["created"]),
        "paid_on": date(invoice["status_transitions"]["paid_at"]),
        "amount_due": format_money(invoice["amount_remaining"], invoice["currency"]),
        "total": format_money(invoice["total"], invoice["currency"]),
        "lines": [
            {
                "description": line["description"],
                "period": f"{date(line['period']['start'])} to {date(line['period']['end'])}",
                "amount": format_money(line["amount"], line["currency"]),
            }
            for line in invoice["lines"]["data"]
        ],
        # The payment waits for the cardholder to authenticate with the card on file.
        "action_card": card["card"]["last4"] if card else None,
    }


def _invoice_or_404(store: Store, token: str, *, for_update: bool = False) -> dict[str, Any]:
    invoice = hosted.linked_invoice(store, token, for_update=for_update)
    if invoice is None:
        abort(404)
    return invoice


@bp.route("/i/<token>", methods=["GET", "POST"])
def hosted_invoice(token: str) -> Response | tuple[str, int]:
    """The invoice; while open, pay it with a card (3-D Secure cards go through a challenge)."""
    form = CardForm()
    error = None
    if form.validate_on_submit():
        number, month, year = form.card()
        try:
            with sandbox().store() as store:
                invoice = _invoice_or_404(store, token, for_update=True)
                if invoice["status"] != "open":
                    raise operations.CardError(
                        f"This invoice is {invoice['status']}; it can no longer be paid.",
                        "invoice_not_open",
                    )
                today = datetime.fromtimestamp(store.now(), UTC)
                operations.check_card(number, month, year, today.year, today.month)
                pm = hosted.new_card(store, invoice["customer"], number, month, year)
                if operations.needs_authentication(pm):
                    challenge = hosted.new_challenge(
                        store,
                        purpose="invoice",
                        target=token,
                        amount=invoice["amount_remaining"],
                        currency=invoice["currency"],
                        payment_method=pm["id"],
                    )
                    paid = None
                else:
                    paid = hosted.pay_on_hosted_page(store, invoice, pm)
                    pi = store.find(invoice.get("_payment_intent") or "") or {}
                    declined = (pi.get("last_payment_error") or {}).get("message")
        except operations.CardError as exc:
            error = exc.message
        else:
            if paid is None:
                url = url_for("sandbox.three_d_secure", challenge_id=challenge["id"])
                return redirect(url, code=303)
            if paid:
                flash("Payment complete. Thank you!", "success")
                return redirect(url_for("sandbox.hosted_invoice", token=token), code=303)
            error = declined or "Your card was declined."
    with sandbox().store() as store:
        invoice = _invoice_or_404(store, token)
        view = _view(store, invoice)
    return render_template(
        "sandbox/invoice.html",
        token=token,
        view=view,
        form=form,
        button_form=EmptyForm(),
        error=error,
    ), (402 if error else 200)


@bp.post("/i/<token>/authenticate")
def hosted_invoice_authenticate(token: str) -> Response:
    """Complete the 3-D Secure step a payment waits for, with the card on file."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    with sandbox().store() as store:
        invoice = _invoice_or_404(store, token, for_update=True)
        pi = store.find(invoice.get("_payment_intent") or "") or {}
        if invoice["status"] != "open" or pi.get("status") != "requires_action":
            flash("This invoice does not need authentication.", "error")
            return redirect(url_for("sandbox.hosted_invoice", token=token), code=303)
        challenge = hosted.new_challenge(
            store,
            purpose="invoice",
            target=token,
            amount=invoice["amount_remaining"],
            currency=invoice["currency"],
            payment_method=pi["payment_method"],
        )
    return redirect(url_for("sandbox.three_d_secure", challenge_id=challenge["id"]), code=303)
