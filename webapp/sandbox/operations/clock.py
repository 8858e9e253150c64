"""The test clock: what Stripe does while time passes (renewals, failed renewals, scheduled
cancellations, schedule phases, expiring pending updates and checkout sessions)."""

from __future__ import annotations

import copy
from typing import Any

from webapp.sandbox import objects
from webapp.sandbox.operations.changes import (
    ACTIVE,
    cancel_now,
    expire_pending_update,
    interval_of,
    pending_in_invoice_order,
)
from webapp.sandbox.operations.checkout import expire_overdue_sessions
from webapp.sandbox.operations.invoicing import create_invoice, item_price, period_line
from webapp.sandbox.operations.payments import default_payment_method, pay_invoice
from webapp.sandbox.store import Store, diff


def advance_clock(store: Store, seconds: int) -> int:
    """Move time on and do what Stripe would have done meanwhile; returns the new time."""
    from webapp.sandbox.operations import schedules

    now = store.advance_clock(seconds)
    expire_overdue_sessions(store)
    schedules.start_due_schedules(store, now)
    for sub in store.query("subscription"):
        advance_subscription(store, sub, now)
    return now


def advance_subscription(store: Store, sub: dict[str, Any], now: int) -> dict[str, Any]:
    """Everything due for `sub` up to `now`, earliest first; at one moment a cancellation
    comes before a schedule's phase change, which comes before the renewal."""
    from webapp.sandbox.operations import schedules

    while sub["status"] in ACTIVE:
        due: list[tuple[int, int, str]] = []
        if sub.get("pending_update"):
            due.append((sub["pending_update"]["expires_at"], 0, "expire_pending_update"))
        if sub["cancel_at"]:
            due.append((sub["cancel_at"], 1, "cancel"))
        if sub.get("schedule") and (when := schedules.next_transition(store, sub)) is not None:
            due.append((when, 2, "schedule"))
        due.append((sub["items"]["data"][0]["current_period_end"], 3, "renew"))
        when, _, what = min(due)
        if when > now:
            break
        with store.moment(when):
            if what == "expire_pending_update":
                sub = expire_pending_update(store, sub)
            elif what == "cancel":
                # Assumption: pending prorations (e.g. the credit of a mid-period cancel_at)
                # go on a final invoice when the subscription ends, as with `invoice_now`.
                sub = cancel_now(store, sub, invoice_now=True, at=when)
            elif what == "schedule":
                sub = schedules.transition(store, sub, when)
            else:
                sub = renew(store, sub)
    return sub


def renew(store: Store, sub: dict[str, Any]) -> dict[str, Any]:
    """The period ends: a new period, its invoice (pending prorations first), a payment try."""
    before = copy.deepcopy(sub)
    item = sub["items"]["data"][0]
    price = item_price(store, item)
    period_start, period_end = item["current_period_start"], item["current_period_end"]
    new_end = objects.add_interval(period_end, *interval_of(price))
    item["current_period_start"], item["current_period_end"] = period_end, new_end
    lines = pending_in_invoice_order(sub["_pending_lines"])
    sub["_pending_lines"] = []
    amount, line_end = None, new_end
    if sub["cancel_at"] and period_end < sub["cancel_at"] < new_end:
        # "If set during a future period, this will always cause a proration for that
        # period" (SDK subscription update params, cancel_at): bill only until cancel_at.
        line_end = sub["cancel_at"]
        full = price["unit_amount"] * item["quantity"]
        amount = round(full * (line_end - period_end) / (new_end - period_end))
    lines.append(period_line(store, item, price, period_end, line_end, amount=amount))
    customer = store.get("customer", sub["customer"])
    invoice = create_invoice(
        store, customer, sub, "subscription_cycle", lines, period_start, period_end
    )
    sub["latest_invoice"] = invoice["id"]
    pm = default_payment_method(store, customer, sub)
    if not pay_invoice(store, invoice, pm, off_session=True):
        sub["status"] = "past_due"
    store.save(sub)
    store.emit("customer.subscription.updated", sub, diff(before, sub))
    return sub
