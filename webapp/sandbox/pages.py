"""The pages a browser visits instead of Stripe's: hosted Checkout and the customer portal, plus
JSON control endpoints for the test clock and fault switches. Registered only in sandbox mode."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, abort, current_app, jsonify, redirect, render_template, request
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, Regexp

from webapp.catalog import format_money
from webapp.extensions import csrf
from webapp.sandbox import operations
from webapp.sandbox.store import Store, diff, public_view
from webapp.sandbox.wire import StripeAPIError

bp = Blueprint("sandbox", __name__, url_prefix="/sandbox")

EXPIRY_RE = re.compile(r"^\s*(\d{1,2})\s*/?\s*(\d{2}|\d{4})\s*$")
CYCLE_NAMES = {"month": "monthly", "year": "yearly"}


def _sandbox():
    return current_app.extensions["stripe_sandbox"]


class CardForm(FlaskForm):
    card_number = StringField(
        "Card number",
        validators=[
            DataRequired(),
            Regexp(r"^[\d ]{12,23}$", message="Enter the 16 digits on the card."),
        ],
    )
    expiry = StringField(
        "Expiry",
        validators=[DataRequired(), Regexp(EXPIRY_RE.pattern, message="Use MM / YY.")],
    )
    cvc = StringField(
        "CVC", validators=[DataRequired(), Regexp(r"^\d{3,4}$", message="3 or 4 digits.")]
    )
    submit = SubmitField("Pay")

    def card(self) -> tuple[str, int, int]:
        match = EXPIRY_RE.match(self.expiry.data or "")
        assert match
        month, year = int(match.group(1)), int(match.group(2))
        return (
            operations.normalise_card_number(self.card_number.data or ""),
            month,
            (year + 2000 if year < 100 else year),
        )


class UpdateCardForm(CardForm):
    submit = SubmitField("Update card")


class SwitchPlanForm(FlaskForm):
    price = SelectField("New plan", validators=[DataRequired()], choices=[])
    submit = SubmitField("Switch plan")


class EmptyForm(FlaskForm):
    """A button-only POST (cancel, resume): CSRF and nothing else."""


def _cycle(price: dict[str, Any]) -> str:
    return CYCLE_NAMES.get(price["recurring"]["interval"], price["recurring"]["interval"])


def _describe_price(store: Store, price: dict[str, Any]) -> dict[str, Any]:
    product = store.find(price["product"]) or {}
    return {
        "id": price["id"],
        "name": product.get("name") or price["product"],
        "cycle": _cycle(price),
        "amount": format_money(price["unit_amount"], price["currency"]),
        "label": f"{product.get('name') or price['product']} — "
        f"{format_money(price['unit_amount'], price['currency'])} {_cycle(price)}",
    }


def _date(timestamp: int | None) -> str:
    if not timestamp:
        return ""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%d %b %Y")


# --- hosted checkout ------------------------------------------------------------------------


@bp.route("/checkout/<session_id>", methods=["GET", "POST"])
def checkout(session_id: str) -> Response | str | tuple[str, int]:
    """Stripe's hosted Checkout: the order, a card form, and "Pay"."""
    form = CardForm()
    sandbox = _sandbox()
    error = None
    if form.validate_on_submit():
        number, month, year = form.card()
        try:
            with sandbox.store() as store:
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
    with sandbox.store() as store:
        operations.expire_overdue_sessions(store)
        session = store.find(session_id)
        if session is None or session.get("object") != "checkout.session":
            abort(404)
        price = operations.session_price(store, session)
        email = session.get("customer_email")
        if session.get("customer"):
            email = (store.find(session["customer"]) or {}).get("email") or email
        order = _describe_price(store, price)
    status = 402 if error else 200
    return render_template(
        "sandbox/checkout.html", session=session, order=order, email=email, form=form, error=error
    ), status


# --- customer portal ------------------------------------------------------------------------


def _portal_state(store: Store, portal_id: str) -> dict[str, Any]:
    portal = store.find(portal_id)
    if portal is None or portal.get("object") != "billing_portal.session":
        abort(404)
    customer = store.get("customer", portal["customer"])
    subs = [
        s for s in store.query("subscription", customer=customer["id"]) if s["status"] != "canceled"
    ]
    prices = [
        p for p in store.query("price", active=True) if p.get("lookup_key") and p["recurring"]
    ]
    prices.sort(key=lambda p: (p["recurring"]["interval"], p["unit_amount"]))
    card = store.find(customer["invoice_settings"]["default_payment_method"] or "")
    return {
        "portal": portal,
        "customer": customer,
        "sub": subs[0] if subs else None,
        "prices": prices,
        "card": card,
        "invoices": store.query("invoice", customer=customer["id"]),
    }


@bp.get("/portal/<portal_id>")
def portal(portal_id: str) -> str:
    """The customer portal: plan, switch, cancel or resume, card, invoices."""
    return _render_portal(portal_id)


def _render_portal(
    portal_id: str, message: str | None = None, error: str | None = None, card_form=None
):
    with _sandbox().store() as store:
        state = _portal_state(store, portal_id)
        sub = state["sub"]
        current = None
        if sub:
            item = sub["items"]["data"][0]
            current = _describe_price(store, store.get("price", item["price"]))
            current["period_end"] = _date(item["current_period_end"])
        switch_form = SwitchPlanForm()
        switch_form.price.choices = [
            (p["id"], _describe_price(store, p)["label"])
            for p in state["prices"]
            if not current or p["id"] != current["id"]
        ]
        invoices = [
            {
                "number": inv["number"],
                "date": _date(inv["created"]),
                "amount": format_money(inv["total"], inv["currency"]),
                "status": inv["status"],
                "reason": inv["billing_reason"].replace("_", " "),
            }
            for inv in state["invoices"]
        ]
    return render_template(
        "sandbox/portal.html",
        state=state,
        sub=sub,
        current=current,
        switch_form=switch_form,
        button_form=EmptyForm(),
        card_form=card_form or UpdateCardForm(),
        invoices=invoices,
        message=message,
        error=error,
        period_end=current["period_end"] if current else None,
    )


def _change_subscription(portal_id: str, change) -> str:
    """Apply `change(store, sub)` to the portal customer's subscription and emit the update."""
    form = EmptyForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        with _sandbox().store() as store:
            state = _portal_state(store, portal_id)
            if state["sub"] is None:
                abort(404)
            sub = store.get("subscription", state["sub"]["id"], for_update=True)
            before = copy.deepcopy(sub)
            sub, message = change(store, sub)
            store.save(sub)
            if changes := diff(before, sub):
                store.emit("customer.subscription.updated", sub, changes)
    except StripeAPIError as exc:
        return _render_portal(portal_id, error=exc.message)
    return _render_portal(portal_id, message=message)


@bp.post("/portal/<portal_id>/switch")
def portal_switch(portal_id: str) -> str:
    price_id = request.form.get("price", "")

    def switch(store: Store, sub: dict[str, Any]):
        price = store.get("price", price_id)
        if not price["active"]:
            raise StripeAPIError(400, "That plan is no longer sold.")
        # The customer is present in the portal, so the card is charged on-session.
        change = operations.Change(price=price, proration_behavior="always_invoice")
        sub = operations.apply_change(store, sub, change)
        return sub, f"Your plan is now {_describe_price(store, price)['label']}."

    return _change_subscription(portal_id, switch)


@bp.post("/portal/<portal_id>/cancel")
def portal_cancel(portal_id: str) -> str:
    def cancel(store: Store, sub: dict[str, Any]):
        operations.set_cancel_at_period_end(store, sub, True)
        return sub, f"Your plan will end on {_date(sub['cancel_at'])}."

    return _change_subscription(portal_id, cancel)


@bp.post("/portal/<portal_id>/resume")
def portal_resume(portal_id: str) -> str:
    def resume(store: Store, sub: dict[str, Any]):
        operations.set_cancel_at_period_end(store, sub, False)
        return sub, "Your plan will renew as usual."

    return _change_subscription(portal_id, resume)


@bp.post("/portal/<portal_id>/card")
def portal_card(portal_id: str) -> str:
    form = UpdateCardForm()
    if not form.validate_on_submit():
        return _render_portal(portal_id, card_form=form)
    number, month, year = form.card()
    try:
        with _sandbox().store() as store:
            state = _portal_state(store, portal_id)
            today = datetime.fromtimestamp(store.now(), UTC)
            operations.check_card(number, month, year, today.year, today.month)
            customer = state["customer"]
            pm = operations.attach_card(store, customer, number, month, year)
            for sub in store.query("subscription", customer=customer["id"]):
                if sub["status"] != "canceled":
                    before = copy.deepcopy(sub)
                    sub["default_payment_method"] = pm["id"]
                    store.save(sub)
                    store.emit("customer.subscription.updated", sub, diff(before, sub))
            operations.pay_open_invoices(store, customer, pm)
    except StripeAPIError as exc:
        return _render_portal(portal_id, error=exc.message, card_form=form)
    return _render_portal(portal_id, message=f"Card ending {number[-4:]} saved.")


# --- control endpoints (JSON, for tests and scripts) ----------------------------------------


@bp.post("/control/advance")
@csrf.exempt
def control_advance() -> Response:
    """Advance the test clock: `{"days": 31}` or `{"seconds": 60}`."""
    body = request.get_json(silent=True) or {}
    seconds = int(float(body.get("days", 0)) * 86400 + float(body.get("seconds", 0)))
    if seconds <= 0:
        return jsonify(error={"message": "give a positive `days` or `seconds`"}), 400  # type: ignore[return-value]
    with _sandbox().store() as store:
        now = operations.advance_clock(store, seconds)
    return jsonify(now=now)


@bp.post("/control/faults")
@csrf.exempt
def control_faults() -> Response:
    """Arm fault switches: `{"api": {"count": 2, "mode": "500"}, "webhooks": {"mode": "late"}}`."""
    body = request.get_json(silent=True) or {}
    faults = _sandbox().faults
    try:
        if body.get("clear"):
            faults.clear()
        if api := body.get("api"):
            faults.set_api(
                int(api.get("count", 1)), api.get("mode", "500"), float(api.get("delay", 30))
            )
        if hooks := body.get("webhooks"):
            faults.set_webhooks(
                hooks.get("mode"), int(hooks.get("count", 1)), float(hooks.get("delay", 5))
            )
    except ValueError as exc:
        return jsonify(error={"message": str(exc)}), 400  # type: ignore[return-value]
    return jsonify(faults.status())


@bp.post("/control/deliver")
@csrf.exempt
def control_deliver() -> Response:
    """Send pending webhooks now (`{"include_late": true}` also sends the late ones)."""
    body = request.get_json(silent=True) or {}
    sent = _sandbox().webhooks.deliver_due(include_late=bool(body.get("include_late")))
    return jsonify(delivered=sent)


@bp.get("/control/deliveries")
def control_deliveries() -> Response:
    rows = _sandbox().webhooks.delivery_log(limit=int(request.args.get("limit", 50)))
    return jsonify(
        deliveries=[
            {
                "id": row.id,
                "event_id": row.event_id,
                "type": row.event_type,
                "url": row.url,
                "status": row.status,
                "attempts": row.attempts,
                "last_status": row.last_status,
            }
            for row in rows
        ]
    )


def public(obj: Any) -> Any:
    return public_view(obj)
