"""Invoices: list, retrieve, their lines, pay, void, mark uncollectible; `payments` on request."""

from __future__ import annotations

import copy
from typing import Any

from webapp.sandbox import objects
from webapp.sandbox.api.routing import LIST, Call, includable, paginate, route
from webapp.sandbox.api.subscriptions import requested_change
from webapp.sandbox.operations import payments, previews
from webapp.sandbox.operations.invoicing import invoice_payments
from webapp.sandbox.store import Store
from webapp.sandbox.views import render_line
from webapp.sandbox.wire import SCALAR, as_bool, as_int, invalid, resource_missing


def get_invoice(store: Store, invoice_id: str, **kwargs: Any) -> dict[str, Any]:
    """An invoice; a preview only for the 72 hours it can be retrieved (docs.stripe.com/
    invoicing/preview)."""
    invoice = store.get("invoice", invoice_id, **kwargs)
    if invoice.get("_preview") and invoice["_expires_at"] <= store.now():
        raise resource_missing("invoice", invoice_id)
    return invoice


@route(
    "/v1/invoices", "GET", {**LIST, "customer": SCALAR, "subscription": SCALAR, "status": SCALAR}
)
def list_invoices(call: Call) -> dict[str, Any]:
    # Previews "will not show up in invoice listing calls" (SDK `_invoice.py`, create_preview).
    items = [
        invoice
        for invoice in call.store.query("invoice", customer=call.params.get("customer"))
        if not invoice.get("_preview")
    ]
    if sub := call.params.get("subscription"):
        # An invoice of no subscription (a payment-mode Checkout's) has `parent` null.
        items = [
            i
            for i in items
            if ((i["parent"] or {}).get("subscription_details") or {}).get("subscription") == sub
        ]
    if status := call.params.get("status"):
        items = [item for item in items if item["status"] == status]
    return paginate(call, items)


@route("/v1/invoices/<id>", "GET", {})
def retrieve_invoice(call: Call, id: str) -> dict[str, Any]:
    return get_invoice(call.store, id)


@route("/v1/invoices/<id>/lines", "GET", LIST)
def list_invoice_lines(call: Call, id: str) -> dict[str, Any]:
    # The invoice shows its first lines only; this list pages through all of them.
    stored = copy.deepcopy(get_invoice(call.store, id)["lines"]["data"])
    return paginate(call, [render_line(call.store, line) for line in stored])


@includable("invoice", "payments")
def invoice_payment_list(store: Store, invoice: dict[str, Any]) -> dict[str, Any]:
    """`expand[]=payments`: the invoice's InvoicePayments, which Stripe includes only when asked
    (SDK `_invoice_payment.py`: "an includable payments property")."""
    found = sorted(
        invoice_payments(store, store.get("invoice", invoice["id"])), key=lambda p: p["created"]
    )
    return objects.list_object(found, f"/v1/invoice_payments?invoice={invoice['id']}")


@route("/v1/invoices/<id>/void", "POST", {})
def void_invoice(call: Call, id: str) -> dict[str, Any]:
    return payments.void_invoice(call.store, get_invoice(call.store, id, for_update=True))


@route("/v1/invoices/<id>/mark_uncollectible", "POST", {})
def mark_uncollectible(call: Call, id: str) -> dict[str, Any]:
    return payments.mark_uncollectible(call.store, get_invoice(call.store, id, for_update=True))


@route(
    "/v1/invoices/<id>/pay",
    "POST",
    {"payment_method": SCALAR, "off_session": SCALAR},
)
def pay_invoice(call: Call, id: str) -> dict[str, Any]:
    invoice = get_invoice(call.store, id, for_update=True)
    return payments.pay_invoice_now(
        call.store,
        invoice,
        call.params.get("payment_method"),
        # "Defaults to true (off-session)" (SDK `params/_invoice_pay_params.py`).
        off_session=as_bool(call.params.get("off_session", True), "off_session"),
    )


SUBSCRIPTION_DETAILS = {
    "items": [
        {"id": SCALAR, "price": SCALAR, "plan": SCALAR, "quantity": SCALAR, "deleted": SCALAR}
    ],
    "proration_behavior": SCALAR,
    "proration_date": SCALAR,
    "billing_cycle_anchor": {"type": SCALAR, "timestamp": SCALAR},
    "cancel_at": SCALAR,
    "cancel_at_period_end": SCALAR,
    "cancel_now": SCALAR,
}


@route(
    "/v1/invoices/create_preview",
    "POST",
    {
        "customer": SCALAR,
        "subscription": SCALAR,
        "subscription_details": SUBSCRIPTION_DETAILS,
        "preview_mode": SCALAR,
    },
)
def create_preview(call: Call) -> dict[str, Any]:
    """What the next (or immediate) invoice would be; since basil the caller must say which
    subscription or which items (docs.stripe.com/changelog/basil/2025-03-31/
    invoice-preview-api-deprecations)."""
    params, store = call.params, call.store
    details = params.get("subscription_details") or {}
    mode = params.get("preview_mode", "next")
    if mode not in ("next", "recurring"):
        raise invalid("Invalid preview_mode: must be one of next, recurring", param="preview_mode")
    customer = (
        store.get("customer", params["customer"], param="customer")
        if params.get("customer")
        else None
    )
    if "proration_date" in details:
        if not params.get("subscription") or "items" not in details:
            raise invalid(
                "When `subscription_details[proration_date]` is set, `subscription` and "
                "`subscription_details[items]` are required.",
                param="subscription_details[proration_date]",
            )
        if details.get("proration_behavior") == "none":
            raise invalid(
                "`subscription_details[proration_behavior]` cannot be `none` when "
                "`subscription_details[proration_date]` is set.",
                param="subscription_details[proration_behavior]",
            )
    if params.get("subscription"):
        sub = store.get("subscription", params["subscription"], param="subscription")
        if customer is not None and customer["id"] != sub["customer"]:
            raise invalid(
                f"The subscription {sub['id']} does not belong to the customer {customer['id']}.",
                param="subscription",
            )
        if sub["status"] == "canceled":
            raise invalid(
                "No upcoming invoices for a canceled subscription.",
                param="subscription",
                code="invoice_upcoming_none",
            )
        request = previews.PreviewRequest(
            change=requested_change(store, sub, details, "subscription_details"),
            cancel_at=details.get("cancel_at"),
            cancel_at_period_end=(
                as_bool(
                    details["cancel_at_period_end"], "subscription_details[cancel_at_period_end]"
                )
                if "cancel_at_period_end" in details
                else None
            ),
            cancel_now=as_bool(
                details.get("cancel_now", False), "subscription_details[cancel_now]"
            ),
            recurring_only=mode == "recurring",
        )
        return previews.preview_subscription_change(
            store, customer or store.get("customer", sub["customer"]), sub, request
        )
    items = details.get("items") or []
    if customer is None or len(items) != 1 or not items[0].get("price"):
        raise invalid(
            "Pass `subscription`, or `customer` with one `subscription_details[items]` price, "
            "to preview an invoice.",
            param="subscription",
            code="parameter_missing",
        )
    price = store.get("price", items[0]["price"], param="subscription_details[items][0][price]")
    quantity = as_int(items[0].get("quantity", 1), "subscription_details[items][0][quantity]")
    return previews.preview_new_subscription(store, customer, price, quantity)
