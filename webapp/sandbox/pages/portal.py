"""The hosted customer portal, as its session's configuration allows: switch plan (now or at
the period end), cancel (with a reason) or resume, update the card, see invoices.

Every form posts, then redirects back to the portal page with the outcome flashed, so the
browser never stays on a POST address.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response
from wtforms import SubmitField

from webapp.catalog import format_money
from webapp.sandbox import operations
from webapp.sandbox.operations import portal as portal_ops
from webapp.sandbox.operations.invoicing import item_price
from webapp.sandbox.pages.blueprint import bp
from webapp.sandbox.pages.common import CardForm, EmptyForm, date, describe_price, sandbox
from webapp.sandbox.store import Store
from webapp.sandbox.wire import StripeAPIError

# How the portal words each cancellation reason (the values are Stripe's).
REASON_LABELS = {
    "too_expensive": "It's too expensive",
    "missing_features": "Some features are missing",
    "switched_service": "I'm switching to another service",
    "unused": "I don't use it enough",
    "customer_service": "Customer service was less than expected",
    "too_complex": "It's too complicated to use",
    "low_quality": "Quality was less than expected",
    "other": "Another reason",
}


class UpdateCardForm(CardForm):
    submit = SubmitField("Update card")


@dataclass
class PortalView:
    """What one portal page shows."""

    portal: dict[str, Any]
    config: dict[str, Any]
    customer: dict[str, Any]
    sub: dict[str, Any] | None = None
    current: dict[str, Any] | None = None
    scheduled: dict[str, Any] | None = None
    offered: list[dict[str, Any]] = field(default_factory=list)
    reasons: list[tuple[str, str]] = field(default_factory=list)
    card: dict[str, Any] | None = None
    invoices: list[dict[str, Any]] = field(default_factory=list)

    @property
    def features(self) -> dict[str, Any]:
        return self.config["features"]


def _portal_session(store: Store, portal_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    portal = store.find(portal_id)
    if portal is None or portal.get("object") != "billing_portal.session":
        abort(404)
    return portal, store.get("billing_portal.configuration", portal["configuration"])


def _live_subscription(store: Store, customer_id: str) -> dict[str, Any] | None:
    subs = [
        s for s in store.query("subscription", customer=customer_id) if s["status"] != "canceled"
    ]
    return subs[0] if subs else None


def _view(store: Store, portal_id: str) -> PortalView:
    portal, config = _portal_session(store, portal_id)
    customer = store.get("customer", portal["customer"])
    view = PortalView(portal=portal, config=config, customer=customer)
    view.sub = _live_subscription(store, customer["id"])
    features = config["features"]
    if view.sub is not None:
        item = view.sub["items"]["data"][0]
        price = item_price(store, item)
        view.current = describe_price(store, price)
        view.current["ends"] = date(view.sub["cancel_at"]) if view.sub["cancel_at"] else None
        view.current["renews"] = date(item["current_period_end"])
        if scheduled := portal_ops.scheduled_switch(store, view.sub):
            next_price, when = scheduled
            view.scheduled = {**describe_price(store, next_price), "date": date(when)}
        elif not view.sub["cancel_at"]:
            view.offered = [
                describe_price(store, p)
                for p in portal_ops.offered_prices(store, config, price["id"])
            ]
        reason = features["subscription_cancel"]["cancellation_reason"]
        if reason["enabled"]:
            view.reasons = [(value, REASON_LABELS[value]) for value in reason["options"]]
    if features["payment_method_update"]["enabled"]:
        view.card = store.find(customer["invoice_settings"]["default_payment_method"] or "")
    if features["invoice_history"]["enabled"]:
        view.invoices = [
            {
                "number": invoice["number"],
                "date": date(invoice["created"]),
                "amount": format_money(invoice["total"], invoice["currency"]),
                "status": invoice["status"],
                "reason": (invoice["billing_reason"] or "").replace("_", " "),
            }
            for invoice in store.query("invoice", customer=customer["id"])
            if not invoice.get("_preview")
        ]
    return view


@bp.get("/portal/<portal_id>")
def portal(portal_id: str) -> str:
    """The customer portal: plan, scheduled switch, switch, cancel or resume, card, invoices."""
    with sandbox().store() as store:
        view = _view(store, portal_id)
    return render_template(
        "sandbox/portal.html", view=view, button_form=EmptyForm(), card_form=UpdateCardForm()
    )


def _back(portal_id: str) -> Response:
    return redirect(url_for("sandbox.portal", portal_id=portal_id), code=303)


def _act(portal_id: str, action: Callable[[Store, PortalView], str]) -> Response:
    """Run one portal action (CSRF-checked) and go back to the page with its outcome."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        with sandbox().store() as store:
            view = _view(store, portal_id)
            message = action(store, view)
    except StripeAPIError as exc:
        flash(exc.message, "error")
    else:
        flash(message, "success")
    return _back(portal_id)


def _subscription(store: Store, view: PortalView) -> dict[str, Any]:
    if view.sub is None:
        abort(404)
    return store.get("subscription", view.sub["id"], for_update=True)


@bp.post("/portal/<portal_id>/switch")
def portal_switch(portal_id: str) -> Response:
    price_id = request.form.get("price", "")

    def switch(store: Store, view: PortalView) -> str:
        sub = _subscription(store, view)
        if price_id not in {offered["id"] for offered in view.offered}:
            raise StripeAPIError(400, "Choose one of the plans offered.")
        price = store.get("price", price_id)
        sub, when = portal_ops.switch_plan(store, sub, view.config, price)
        label = describe_price(store, price)["label"]
        if when is not None:
            return f"Your plan switches to {label} on {date(when)}."
        return f"Your plan is now {label}."

    return _act(portal_id, switch)


@bp.post("/portal/<portal_id>/keep-plan")
def portal_keep_plan(portal_id: str) -> Response:
    def keep(store: Store, view: PortalView) -> str:
        portal_ops.keep_current_plan(store, _subscription(store, view))
        return "Your scheduled change is canceled; your plan stays as it is."

    return _act(portal_id, keep)


@bp.post("/portal/<portal_id>/cancel")
def portal_cancel(portal_id: str) -> Response:
    reason = request.form.get("reason") or None

    def cancel(store: Store, view: PortalView) -> str:
        if not view.features["subscription_cancel"]["enabled"]:
            abort(403)
        sub = _subscription(store, view)
        if view.reasons and reason not in {value for value, _label in view.reasons}:
            raise StripeAPIError(400, "Choose why you are cancelling.")
        sub = portal_ops.cancel(store, sub, view.config, reason)
        if sub["status"] == "canceled":
            return "Your plan is canceled."
        return f"Your plan will end on {date(sub['cancel_at'])}."

    return _act(portal_id, cancel)


@bp.post("/portal/<portal_id>/resume")
def portal_resume(portal_id: str) -> Response:
    def resume(store: Store, view: PortalView) -> str:
        portal_ops.resume(store, _subscription(store, view))
        return "Your plan will renew as usual."

    return _act(portal_id, resume)


@bp.post("/portal/<portal_id>/card")
def portal_card(portal_id: str) -> Response:
    form = UpdateCardForm()
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            abort(400)
        for field_name, errors in form.errors.items():
            label = getattr(form, field_name).label.text
            flash(f"{label}: {' '.join(errors)}", "error")
        return _back(portal_id)
    number, month, year = form.card()
    try:
        with sandbox().store() as store:
            view = _view(store, portal_id)
            if not view.features["payment_method_update"]["enabled"]:
                abort(403)
            today = datetime.fromtimestamp(store.now(), UTC)
            operations.check_card(number, month, year, today.year, today.month)
            customer = store.get("customer", view.customer["id"], for_update=True)
            pm = operations.attach_card(store, customer, number, month, year)
            for sub in store.query("subscription", customer=customer["id"]):
                if sub["status"] != "canceled":
                    portal_ops.use_card(store, sub, pm)
            operations.pay_open_invoices(store, customer, pm)
    except StripeAPIError as exc:
        flash(exc.message, "error")
    else:
        flash(f"Card ending {number[-4:]} saved.", "success")
    return _back(portal_id)
