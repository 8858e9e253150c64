"""What the hosted customer portal does, as its configuration says (docs.stripe.com/
customer-management/configure-portal, …/integrate-customer-portal; SDK billing_portal
`_configuration.py`)."""

from __future__ import annotations

import copy
from typing import Any

from webapp.sandbox.operations import schedules
from webapp.sandbox.operations.changes import (
    Change,
    apply_change,
    cancel_now,
    portal_cancel_at_period_end,
    portal_resume,
)
from webapp.sandbox.operations.invoicing import item_price
from webapp.sandbox.store import Store, diff
from webapp.sandbox.wire import StripeAPIError

# Rough lengths, only to order intervals (a month is shorter than a year, whatever the month).
INTERVAL_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}


def offered_prices(store: Store, config: dict[str, Any], current_price_id: str):
    """The prices the portal offers: those listed in `subscription_update.products`, active,
    other than the current one."""
    update = config["features"]["subscription_update"]
    if not update["enabled"] or "price" not in update["default_allowed_updates"]:
        return []
    offered = []
    for product in update["products"] or []:
        for price_id in product["prices"]:
            price = store.find(price_id)
            if price and price["active"] and price["id"] != current_price_id:
                offered.append(price)
    return offered


def _length(price: dict[str, Any]) -> int:
    recurring = price["recurring"]
    return INTERVAL_DAYS[recurring["interval"]] * recurring["interval_count"]


def scheduled_for_period_end(
    config: dict[str, Any], current: dict[str, Any], new: dict[str, Any], quantity: int
) -> bool:
    """Whether a switch meets a `schedule_at_period_end` condition. Stripe documents only the
    names; the sandbox reads them literally (assumption):

    - `decreasing_item_amount`: the new item amount (unit amount times quantity) is lower than the
      current one, whatever each price's interval (yearly → monthly of the same plan is a
      decrease; monthly → yearly is not). Comparing per-day amounts across intervals would
      make a yearly plan a "decrease" from its monthly one, which no customer calls a
      downgrade.
    - `shortening_interval`: the new price bills over a shorter interval (yearly → monthly).
    """
    conditions = {
        c["type"]
        for c in config["features"]["subscription_update"]["schedule_at_period_end"]["conditions"]
    }
    decreasing = new["unit_amount"] * quantity < current["unit_amount"] * quantity
    shortening = _length(new) < _length(current)
    return ("decreasing_item_amount" in conditions and decreasing) or (
        "shortening_interval" in conditions and shortening
    )


def switch_plan(
    store: Store, sub: dict[str, Any], config: dict[str, Any], price: dict[str, Any]
) -> tuple[dict[str, Any], int | None]:
    """Switch to `price` now, or at the period end when the configuration says so (the
    portal then "automatically creates and attaches a subscription schedule"). Returns the
    subscription and, for a scheduled switch, when it happens."""
    update = config["features"]["subscription_update"]
    item = sub["items"]["data"][0]
    current = item_price(store, item)
    if scheduled_for_period_end(config, current, price, item["quantity"]):
        schedule = schedules.from_subscription(
            store,
            sub,
            next_phase=(price, item["quantity"]),
            release_when_next_phase_starts=True,
        )
        return store.get("subscription", sub["id"]), schedule["phases"][1]["start_date"]
    before = copy.deepcopy(sub)
    # Assumption (undocumented): the portal charges the customer, who is present, and a
    # refused card leaves the plan as it was (error_if_incomplete).
    change = Change(
        price=price,
        proration_behavior=update["proration_behavior"],
        anchor_now=update["billing_cycle_anchor"] == "now",
        payment_behavior="error_if_incomplete",
    )
    sub = apply_change(store, sub, change)
    _save(store, sub, before)
    return sub, None


def _save(store: Store, sub: dict[str, Any], before: dict[str, Any]) -> None:
    store.save(sub)
    if changes := diff(before, sub):
        store.emit("customer.subscription.updated", sub, changes)


def scheduled_switch(store: Store, sub: dict[str, Any]) -> tuple[dict[str, Any], int] | None:
    """The price a schedule will switch the subscription to, and when."""
    schedule = store.find(sub.get("schedule") or "")
    if schedule is None or schedule["status"] != "active":
        return None
    index = schedule["_phase"] + 1
    if index >= len(schedule["phases"]):
        return None
    phase = schedule["phases"][index]
    return store.get("price", phase["items"][0]["price"]), phase["start_date"]


def keep_current_plan(store: Store, sub: dict[str, Any]) -> None:
    """Cancel a scheduled switch: the portal's schedule is released."""
    schedule = store.find(sub.get("schedule") or "")
    if schedule is None or schedule["status"] not in schedules.LIVE:
        raise StripeAPIError(400, "There is no scheduled change to cancel.")
    schedules.release(store, schedule)


def cancel(
    store: Store, sub: dict[str, Any], config: dict[str, Any], feedback: str | None
) -> dict[str, Any]:
    """Cancel as `subscription_cancel` says: at the period end (flexible: `cancel_at`;
    classic: `cancel_at_period_end`) or at once (prorated when `create_prorations`), with the
    customer's reason in `cancellation_details.feedback`.

    Assumption (undocumented): a scheduled switch is dropped (its schedule released) first.
    """
    settings = config["features"]["subscription_cancel"]
    if sub.get("schedule"):
        keep_current_plan(store, sub)
        sub = store.get("subscription", sub["id"], for_update=True)
    before = copy.deepcopy(sub)
    if feedback:
        sub["cancellation_details"]["feedback"] = feedback
    if settings["mode"] == "immediately":
        prorate = settings["proration_behavior"] == "create_prorations"
        return cancel_now(store, sub, prorate=prorate, invoice_now=prorate)
    portal_cancel_at_period_end(store, sub)
    _save(store, sub, before)
    return sub


def resume(store: Store, sub: dict[str, Any]) -> dict[str, Any]:
    before = copy.deepcopy(sub)
    portal_resume(store, sub)
    sub["cancellation_details"]["feedback"] = None
    _save(store, sub, before)
    return sub


def use_card(store: Store, sub: dict[str, Any], pm: dict[str, Any]) -> None:
    """The portal's new card becomes the subscription's default."""
    before = copy.deepcopy(sub)
    sub["default_payment_method"] = pm["id"]
    _save(store, sub, before)
