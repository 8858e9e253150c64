"""Changing a subscription the way Stripe does: price and quantity switches with prorations,
billing-cycle resets, payment behaviours, scheduled and immediate cancellations.

Sources: docs.stripe.com/billing/subscriptions/prorations, …/change-price, …/pending-updates,
docs.stripe.com/api/subscriptions/update and the SDK's `params/_subscription_update_params.py`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from webapp.sandbox import objects
from webapp.sandbox.operations.cards import CardError
from webapp.sandbox.operations.invoicing import (
    create_invoice,
    item_price,
    period_line,
    proration_line,
)
from webapp.sandbox.operations.payments import default_payment_method, pay_invoice, void_invoice
from webapp.sandbox.store import Store, diff
from webapp.sandbox.wire import StripeAPIError, invalid

PRORATION_BEHAVIORS = ("always_invoice", "create_prorations", "none")
PAYMENT_BEHAVIORS = (
    "allow_incomplete",
    "default_incomplete",
    "error_if_incomplete",
    "pending_if_incomplete",
)
# "The pending update expires … at most 23 hours after the update" (docs.stripe.com/billing/
# subscriptions/pending-updates-reference).
PENDING_UPDATE_SECONDS = 23 * 3600
ACTIVE = ("active", "past_due", "trialing")


@dataclass
class Change:
    """What a request asks of a subscription's (single) item and its billing."""

    price: dict[str, Any] | None = None
    quantity: int | None = None
    proration_behavior: str = "create_prorations"
    proration_date: int | None = None
    anchor_now: bool = False
    payment_behavior: str = "allow_incomplete"
    off_session: bool = False


@dataclass
class Plan:
    """What a change does: the subscription after it (an unsaved copy) and what it bills now."""

    sub: dict[str, Any]
    lines: list[dict[str, Any]] = field(default_factory=list)
    at: int = 0

    @property
    def bills_now(self) -> bool:
        return bool(self.lines)


def interval_of(price: dict[str, Any]) -> tuple[str, int]:
    recurring = price["recurring"]
    return recurring["interval"], recurring["interval_count"]


def pending_in_invoice_order(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pending invoice items "in reverse chronological order" (SDK `_invoice.py`, lines); the
    credit and charge of one change keep their own order."""
    return sorted(lines, key=lambda spec: -spec["start"])


def plan_change(store: Store, sub: dict[str, Any], change: Change, at: int) -> Plan:
    """What `change` does at time `at`, computed on a copy of `sub`; nothing is saved.

    - The billing cycle resets (new period from `at`, billed at once: a credit for the unused
      time on the old price unless `proration_behavior=none`, plus the full new price, plus any
      pending prorations) when `billing_cycle_anchor[type]=now` is passed or the interval
      changes. In classic mode Stripe resets on an interval change by itself; in flexible mode
      it never resets automatically and how a single-item interval change is billed without
      an explicit reset is undocumented (docs.stripe.com/billing/subscriptions/billing-mode/
      compare): the sandbox assumes the classic, documented behaviour for both.
    - Otherwise the period stays and the change is prorated by the second: invoiced now
      (`always_invoice`), left pending for the next invoice (`create_prorations`, the
      default), or not at all (`none`).
    """
    new = copy.deepcopy(sub)
    item = new["items"]["data"][0]
    old_price, old_quantity = item_price(store, item), item["quantity"]
    price = change.price or old_price
    quantity = change.quantity or old_quantity
    start, end = item["current_period_start"], item["current_period_end"]
    changes_item = price["id"] != old_price["id"] or quantity != old_quantity
    prorate = change.proration_behavior != "none"
    plan = Plan(new, at=at)
    if change.anchor_now or interval_of(price) != interval_of(old_price):
        credit = (
            proration_line(
                store, item, old_price, old_quantity, credit=True, at=at, start=start, end=end
            )
            if prorate
            else None
        )
        item["price"], item["quantity"] = price["id"], quantity
        new_end = objects.add_interval(at, *interval_of(price))
        item["current_period_start"], item["current_period_end"] = at, new_end
        new["billing_cycle_anchor"] = at
        pending = new["_pending_lines"] + ([credit] if credit else [])
        new["_pending_lines"] = []
        plan.lines = [
            *pending_in_invoice_order(pending),
            period_line(store, item, price, at, new_end),
        ]
        return plan
    if not changes_item:
        return plan
    prorations = []
    if prorate:
        for line_price, line_quantity, is_credit in (
            (old_price, old_quantity, True),
            (price, quantity, False),
        ):
            line = proration_line(
                store,
                item,
                line_price,
                line_quantity,
                credit=is_credit,
                at=at,
                start=start,
                end=end,
            )
            if line:
                prorations.append(line)
    item["price"], item["quantity"] = price["id"], quantity
    new["_pending_lines"].extend(prorations)
    if change.proration_behavior == "always_invoice" and new["_pending_lines"]:
        plan.lines = pending_in_invoice_order(new["_pending_lines"])
        new["_pending_lines"] = []
    return plan


def apply_change(store: Store, sub: dict[str, Any], change: Change) -> dict[str, Any]:
    """Carry out `change` now, invoicing and collecting what it bills, as `payment_behavior`
    says (docs.stripe.com/api/subscriptions/update):

    - `allow_incomplete` (default): the change applies; a failed payment leaves the invoice
      open and the subscription `past_due`.
    - `error_if_incomplete`: a failed payment answers 402 and nothing changes (the sandbox
      rolls the whole request back; what Stripe does with the failed invoice is undocumented).
    - `pending_if_incomplete`: a failed payment keeps the subscription as it was, with the
      change waiting in `pending_update` until the invoice is paid or the update expires.
    - `default_incomplete`: the change applies and the invoice waits for its PaymentIntent to
      be confirmed; the subscription is `past_due` meanwhile.
    Returns the subscription as it now is (unsaved; the caller saves and emits).
    """
    now = store.now()
    at = change.proration_date or now
    plan = plan_change(store, sub, change, at)
    if not plan.bills_now:
        return plan.sub
    customer = store.get("customer", sub["customer"])
    invoice = create_invoice(store, customer, plan.sub, "subscription_update", plan.lines, now, now)
    new = plan.sub
    new["latest_invoice"] = invoice["id"]
    if change.payment_behavior == "default_incomplete":
        if invoice["status"] == "open" and invoice["amount_due"] > 0:
            new["status"] = "past_due"
        elif invoice["status"] == "open":
            pay_invoice(store, invoice, None, off_session=change.off_session)
        return new
    pm = default_payment_method(store, customer, sub)
    if pay_invoice(store, invoice, pm, off_session=change.off_session):
        if new["status"] == "past_due" and not _other_open_invoices(store, new, invoice["id"]):
            new["status"] = "active"
        return new
    if change.payment_behavior == "error_if_incomplete":
        pi = store.find(invoice.get("_payment_intent") or "") or {}
        error = pi.get("last_payment_error") or {}
        raise CardError(
            error.get("message", "Your card was declined."),
            error.get("code", "card_declined"),
            error.get("decline_code"),
        )
    if change.payment_behavior == "pending_if_incomplete":
        kept = copy.deepcopy(sub)
        kept["latest_invoice"] = invoice["id"]
        kept["pending_update"] = {
            "billing_cycle_anchor": new["billing_cycle_anchor"]
            if new["billing_cycle_anchor"] != sub["billing_cycle_anchor"]
            else None,
            "discount": None,
            "discounts": None,
            "expires_at": min(
                sub["items"]["data"][0]["current_period_end"], now + PENDING_UPDATE_SECONDS
            ),
            "metadata": None,
            "subscription_items": copy.deepcopy(new["items"]["data"]),
            "trial_end": None,
            "trial_from_plan": None,
        }
        kept["_pending_change"] = {
            key: value for key, value in new.items() if key != "_pending_change"
        }
        return kept
    new["status"] = "past_due"
    return new


def _other_open_invoices(store: Store, sub: dict[str, Any], except_id: str) -> bool:
    return any(
        invoice["status"] == "open"
        and invoice["id"] != except_id
        and ((invoice["parent"] or {}).get("subscription_details") or {}).get("subscription")
        == sub["id"]
        for invoice in store.query("invoice", customer=sub["customer"])
    )


def apply_pending_update(store: Store, sub: dict[str, Any]) -> dict[str, Any]:
    """The invoice of a pending update was paid: the update takes effect."""
    before = copy.deepcopy(sub)
    new = sub.pop("_pending_change")
    new["latest_invoice"] = sub["latest_invoice"]
    new["pending_update"] = None
    new["status"] = "active"
    sub.clear()
    sub.update(new)
    store.save(sub)
    store.emit("customer.subscription.updated", sub, diff(before, sub))
    store.emit("customer.subscription.pending_update_applied", sub)
    return sub


def expire_pending_update(store: Store, sub: dict[str, Any]) -> dict[str, Any]:
    """Nobody paid in time: Stripe voids the invoice and forgets the update."""
    before = copy.deepcopy(sub)
    invoice = store.find(sub["latest_invoice"] or "")
    if invoice and invoice["status"] in ("open", "uncollectible"):
        void_invoice(store, invoice)
    sub["pending_update"] = None
    sub.pop("_pending_change", None)
    store.save(sub)
    store.emit("customer.subscription.updated", sub, diff(before, sub))
    store.emit("customer.subscription.pending_update_expired", sub)
    return sub


# --- cancellations ----------------------------------------------------------------------------


def _require_live(sub: dict[str, Any], param: str) -> None:
    if sub["status"] not in ACTIVE:
        raise StripeAPIError(
            400,
            "A canceled subscription can only update its cancellation_details and metadata.",
            param=param,
        )


def period_ends(sub: dict[str, Any]) -> list[int]:
    return [item["current_period_end"] for item in sub["items"]["data"]]


def set_cancel_at_period_end(store: Store, sub: dict[str, Any], cancel: bool) -> dict[str, Any]:
    """`cancel_at_period_end`: true schedules the end at the (earliest) period end, with
    `cancel_at` set to it; false takes the scheduled end back."""
    _require_live(sub, "cancel_at_period_end")
    sub["cancel_at_period_end"] = cancel
    if cancel:
        _schedule_end(store, sub, min(period_ends(sub)))
    else:
        _unschedule_end(sub)
    return sub


def set_cancel_at(
    store: Store, sub: dict[str, Any], value: Any, *, proration_behavior: str
) -> dict[str, Any]:
    """`cancel_at`: a timestamp, `min_period_end`/`max_period_end` (resolved at once to the
    earliest/latest item period end: docs.stripe.com/changelog/basil/2025-07-30/
    cancel-at-enums), or "" to take it back.

    "If set to a date before the current period ends, this will cause a proration if
    prorations have been enabled using proration_behavior" (SDK subscription update params):
    a credit for the time after `cancel_at`, pending until the subscription ends.
    """
    _require_live(sub, "cancel_at")
    if value == "":
        _unschedule_end(sub)
        sub["cancel_at_period_end"] = False
        return sub
    if value == "min_period_end":
        when = min(period_ends(sub))
    elif value == "max_period_end":
        when = max(period_ends(sub))
    else:
        try:
            when = int(value)
        except (TypeError, ValueError):
            raise invalid(
                f"Invalid cancel_at: {value}", param="cancel_at", code="parameter_invalid_integer"
            ) from None
    now = store.now()
    if when <= now:
        # Assumption: the wording of Stripe's refusal of a past cancel_at.
        raise invalid("cancel_at must be in the future.", param="cancel_at")
    _unschedule_end(sub)
    sub["cancel_at_period_end"] = False
    item = sub["items"]["data"][0]
    end = item["current_period_end"]
    if when < end and proration_behavior != "none":
        credit = proration_line(
            store,
            item,
            item_price(store, item),
            item["quantity"],
            credit=True,
            at=when,
            start=item["current_period_start"],
            end=end,
        )
        if credit:
            credit["_cancel_proration"] = True
            sub["_pending_lines"].append(credit)
    _schedule_end(store, sub, when)
    return sub


def _schedule_end(store: Store, sub: dict[str, Any], when: int) -> None:
    sub["cancel_at"] = when
    sub["canceled_at"] = store.now()
    sub["cancellation_details"]["reason"] = "cancellation_requested"


def _unschedule_end(sub: dict[str, Any]) -> None:
    # The credit for time after a cancel_at that no longer holds goes with it (Stripe would
    # add the opposite proration; the total is the same).
    sub["_pending_lines"] = [
        line for line in sub["_pending_lines"] if not line.get("_cancel_proration")
    ]
    sub["cancel_at"] = sub["canceled_at"] = None
    sub["cancellation_details"]["reason"] = None


def portal_cancel_at_period_end(store: Store, sub: dict[str, Any]) -> dict[str, Any]:
    """The customer portal's "cancel at period end" (docs.stripe.com/billing/subscriptions/
    billing-mode/compare, "Cancellations in the Customer Portal"): flexible sets `cancel_at`
    to the latest item period end and leaves `cancel_at_period_end` false; classic sets
    `cancel_at_period_end` true and `cancel_at` to the period end."""
    if sub["billing_mode"]["type"] == "flexible":
        return set_cancel_at(store, sub, "max_period_end", proration_behavior="none")
    return set_cancel_at_period_end(store, sub, True)


def portal_resume(store: Store, sub: dict[str, Any]) -> dict[str, Any]:
    """Take back a scheduled cancellation, whichever way it was scheduled."""
    _require_live(sub, "cancel_at")
    sub["cancel_at_period_end"] = False
    _unschedule_end(sub)
    return sub


def cancel_now(
    store: Store,
    sub: dict[str, Any],
    *,
    prorate: bool = False,
    invoice_now: bool = False,
    at: int | None = None,
) -> dict[str, Any]:
    """End the subscription now (`DELETE /v1/subscriptions/{id}`) or at `at` (the clock).

    `prorate` (default false) credits the unused time until the period end; `invoice_now`
    (default false) puts pending prorations on a final invoice at once, where a credit goes to
    the customer's balance (SDK `params/_subscription_cancel_params.py`). Assumption (billing
    reason undocumented): the final invoice says `subscription_update`.
    """
    if sub["status"] == "canceled":
        raise StripeAPIError(
            400,
            f"No such subscription: '{sub['id']}'; a similar object exists but is canceled.",
            code="resource_missing",
            param="id",
        )
    when = store.now() if at is None else at
    item = sub["items"]["data"][0]
    if prorate:
        credit = proration_line(
            store,
            item,
            item_price(store, item),
            item["quantity"],
            credit=True,
            at=when,
            start=item["current_period_start"],
            end=item["current_period_end"],
        )
        if credit:
            sub["_pending_lines"].append(credit)
    if invoice_now and sub["_pending_lines"]:
        customer = store.get("customer", sub["customer"])
        lines = pending_in_invoice_order(sub["_pending_lines"])
        sub["_pending_lines"] = []
        invoice = create_invoice(store, customer, sub, "subscription_update", lines, when, when)
        sub["latest_invoice"] = invoice["id"]
        if invoice["status"] == "open":
            pay_invoice(
                store, invoice, default_payment_method(store, customer, sub), off_session=True
            )
    sub.update(status="canceled", ended_at=when, canceled_at=sub["canceled_at"] or when)
    sub["cancellation_details"]["reason"] = (
        sub["cancellation_details"]["reason"] or "cancellation_requested"
    )
    if sub.get("schedule"):
        from webapp.sandbox.operations.schedules import end_with_subscription

        end_with_subscription(store, sub)
    store.save(sub)
    store.emit("customer.subscription.deleted", sub)
    return sub
