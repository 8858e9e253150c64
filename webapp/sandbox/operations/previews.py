"""`POST /v1/invoices/create_preview`: the invoice a change would make, computed with the same
code as the change itself, and kept 72 hours for `GET /v1/invoices/{id}` (docs.stripe.com/
invoicing/preview; SDK `params/_invoice_create_preview_params.py`).

A preview changes nothing else: no event, no saved subscription, no balance moved.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from webapp.sandbox import objects
from webapp.sandbox.operations.changes import (
    Change,
    interval_of,
    pending_in_invoice_order,
    plan_change,
    set_cancel_at,
    set_cancel_at_period_end,
)
from webapp.sandbox.operations.invoicing import (
    build_invoice,
    item_price,
    period_line,
    proration_line,
)
from webapp.sandbox.store import Store, new_id

# "can be retrieved via the /v1/invoices/:id endpoint for the following 72 hours"
PREVIEW_SECONDS = 72 * 3600


@dataclass
class PreviewRequest:
    """What `subscription_details` asks the preview to assume."""

    change: Change
    cancel_at: Any = None  # a timestamp, min/max_period_end, "" or None (not given)
    cancel_at_period_end: bool | None = None
    cancel_now: bool = False
    recurring_only: bool = False  # preview_mode=recurring


def preview_subscription_change(
    store: Store, customer: dict[str, Any], sub: dict[str, Any], request: PreviewRequest
) -> dict[str, Any]:
    """The invoice Stripe would send for `sub` with `request` applied, kept for 72 hours."""
    return _keep(store, build_preview(store, customer, sub, request))


def build_preview(
    store: Store, customer: dict[str, Any], sub: dict[str, Any], request: PreviewRequest
) -> dict[str, Any]:
    """The invoice Stripe would send for `sub` with `request` applied, saved nowhere.

    With the default `create_prorations` this is the *next* invoice: pending prorations (the
    previewed ones included) and the next period (docs.stripe.com/invoicing/preview). When
    the change bills at once (a billing-cycle reset, or `always_invoice`, for which Stripe
    documents no preview shape) the preview is the invoice the change would make now.
    """
    now = store.now()
    at = request.change.proration_date or now
    plan = plan_change(store, sub, request.change, at)
    new = plan.sub
    if request.cancel_at is not None:
        set_cancel_at(
            store, new, request.cancel_at, proration_behavior=request.change.proration_behavior
        )
    if request.cancel_at_period_end is not None:
        set_cancel_at_period_end(store, new, request.cancel_at_period_end)
    item = new["items"]["data"][0]
    price = item_price(store, item)
    start, end = item["current_period_start"], item["current_period_end"]
    if request.recurring_only:
        lines = [_next_period(store, new, item, price)]
        period = (start, end)
    elif request.cancel_now:
        lines = pending_in_invoice_order(new["_pending_lines"])
        if request.change.proration_behavior != "none":
            credit = proration_line(
                store, item, price, item["quantity"], credit=True, at=at, start=start, end=end
            )
            lines = [credit, *lines] if credit else lines
        period = (at, at)
    elif plan.bills_now:
        lines, period = plan.lines, (now, now)
    else:
        lines = pending_in_invoice_order(new["_pending_lines"])
        if not (new["cancel_at"] and new["cancel_at"] <= end):
            lines.append(_next_period(store, new, item, price))
        period = (start, end)
    invoice = build_invoice(
        store,
        customer,
        new,
        "upcoming",
        lines,
        period[0],
        period[1],
        new_id("upcoming_in_"),
    )
    if any(
        line["parent"]["subscription_item_details"]["proration"]
        for line in invoice["lines"]["data"]
    ):
        # "Only set for upcoming invoices that preview prorations" (SDK `_invoice.py`).
        invoice["parent"]["subscription_details"]["subscription_proration_date"] = at
    return invoice


def preview_new_subscription(
    store: Store, customer: dict[str, Any], price: dict[str, Any], quantity: int
) -> dict[str, Any]:
    """The first invoice of a subscription that does not exist yet."""
    now = store.now()
    sub = objects.subscription(
        now,
        customer_id=customer["id"],
        price_obj=price,
        quantity=quantity,
        metadata={},
        payment_method_id=None,
    )
    item = sub["items"]["data"][0]
    line = period_line(store, item, price, now, item["current_period_end"])
    invoice = build_invoice(
        store, customer, sub, "upcoming", [line], now, now, new_id("upcoming_in_")
    )
    # The subscription is imaginary: the preview names none.
    invoice["parent"]["subscription_details"]["subscription"] = None
    for line in invoice["lines"]["data"]:
        line["parent"]["subscription_item_details"]["subscription"] = None
    return _keep(store, invoice)


def _next_period(store: Store, sub: dict[str, Any], item: dict[str, Any], price: dict[str, Any]):
    """The line of the period after the current one (cut short by a cancel_at inside it)."""
    end = item["current_period_end"]
    new_end = objects.add_interval(end, *interval_of(price))
    if sub["cancel_at"] and end < sub["cancel_at"] < new_end:
        full = price["unit_amount"] * item["quantity"]
        amount = round(full * (sub["cancel_at"] - end) / (new_end - end))
        return period_line(store, item, price, end, sub["cancel_at"], amount=amount)
    return period_line(store, item, price, end, new_end)


def _keep(store: Store, invoice: dict[str, Any]) -> dict[str, Any]:
    """A preview is a draft with no number, never listed, never payable, kept 72 hours."""
    invoice["number"] = None
    invoice["status"] = "draft"
    for line in invoice["lines"]["data"]:
        line["id"] = "il_tmp_" + line["id"][3:]
    invoice["_preview"] = True
    invoice["_expires_at"] = store.now() + PREVIEW_SECONDS
    store.save(copy.deepcopy(invoice))
    return invoice
