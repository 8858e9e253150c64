"""The test clock: what Stripe does while time passes (renewal reminders, renewals, failed
renewals, trial reminders and trial ends, scheduled cancellations, schedule phases, expiring
pending updates and checkout sessions)."""

from __future__ import annotations

import copy
from typing import Any

from webapp.sandbox import objects
from webapp.sandbox.operations import trials
from webapp.sandbox.operations.changes import (
    ACTIVE,
    Change,
    cancel_now,
    expire_pending_update,
    interval_of,
    pending_in_invoice_order,
)
from webapp.sandbox.operations.checkout import expire_overdue_sessions
from webapp.sandbox.operations.invoicing import create_invoice, item_price, period_line
from webapp.sandbox.operations.payments import default_payment_method, pay_invoice
from webapp.sandbox.operations.previews import PreviewRequest, build_preview
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
        if (reminder := trials.trial_will_end_due(sub)) is not None:
            due.append((reminder, 3, "trial_will_end"))
        due.append((sub["items"]["data"][0]["current_period_end"], 4, "renew"))
        if (upcoming := upcoming_due(store, sub)) is not None:
            due.append((upcoming, 5, "upcoming"))
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
            elif what == "upcoming":
                sub = send_upcoming(store, sub)
            elif what == "trial_will_end":
                sub = trials.send_trial_will_end(store, sub)
            else:
                sub = end_trial_or_renew(store, sub, when)
    return sub


def end_trial_or_renew(store: Store, sub: dict[str, Any], when: int) -> dict[str, Any]:
    """The period ends. A trial that ends with no card does what its `trial_settings` say
    (cancel or pause) and bills nothing; anything else renews (a trial's first period)."""
    behaviour = trials.ends_trial_without_card(store, sub)
    if behaviour == "cancel":
        return cancel_now(store, sub, at=when)
    if behaviour == "pause":
        return trials.pause_at_trial_end(store, sub)
    return renew(store, sub)


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
    elif sub["status"] == "trialing":
        sub["status"] = "active"  # the trial is over and its first period paid
    store.save(sub)
    store.emit("customer.subscription.updated", sub, diff(before, sub))
    return sub


# --- invoice.upcoming ------------------------------------------------------------------------


def upcoming_due(store: Store, sub: dict[str, Any]) -> int | None:
    """When `invoice.upcoming` is due for the current period, or None (sent already, or no
    renewal is coming because the subscription ends by then).

    "Occurs X number of days before a subscription is scheduled to create an invoice that is
    automatically charged—where X is determined by your subscriptions settings" (Stripe's
    event reference, in the SDKs' event docs); the Dashboard offers 3, 7, 15, 30 or 45 days
    ("Upcoming renewal events"). It concerns every subscription that will renew, whatever its
    interval. Assumption: when the period is shorter than X days, it is sent as the period
    starts.
    """
    item = sub["items"]["data"][0]
    end = item["current_period_end"]
    if sub.get("_upcoming_sent_for") == end or (sub["cancel_at"] and sub["cancel_at"] <= end):
        return None
    return max(end - store.upcoming_days * 86400, item["current_period_start"])


def send_upcoming(store: Store, sub: dict[str, Any]) -> dict[str, Any]:
    """Send `invoice.upcoming` once for this period: the invoice the renewal will make, as
    `create_preview` shows it, but with no id ("The received Invoice object will not have an
    invoice ID"), no number and no hosted page, dated when it will be made and charged."""
    end = sub["items"]["data"][0]["current_period_end"]
    customer = store.get("customer", sub["customer"])
    invoice = build_preview(store, customer, sub, PreviewRequest(change=Change()))
    del invoice["id"]
    invoice.update(
        number=None,
        status="draft",
        created=end,
        next_payment_attempt=end,
        hosted_invoice_url=None,
        invoice_pdf=None,
    )
    for line in invoice["lines"]["data"]:
        line["id"] = "il_tmp_" + line["id"][3:]
        line["invoice"] = None
    invoice["lines"]["url"] = "/v1/invoices/upcoming/lines"
    store.emit("invoice.upcoming", invoice)
    sub["_upcoming_sent_for"] = end
    store.save(sub)
    return sub
