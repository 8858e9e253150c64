"""Free trials: a subscription that starts `trialing`, its $0 first invoice, the reminder three
days before the end, and what happens at the end with or without a card.

Sources:
- docs.stripe.com/billing/subscriptions/trials: "When creating a subscription with a trial
  period, you don't need to add a payment method. An immediate invoice is still created, but
  the amount is 0"; the trial may last at most 730 days.
- docs.stripe.com/payments/checkout/free-trials: `payment_method_collection=if_required`
  collects no card when nothing is due today; `subscription_data.trial_settings.end_behavior.
  missing_payment_method` (`cancel`, `pause` or `create_invoice`) says what a trial that ends
  with no card does.
- The SDK's event docs (`customer.subscription.trial_will_end`): "Occurs three days before a
  subscription's trial period is scheduled to end, or when a trial is ended immediately".
- At the end, a trial with a card becomes `active` and the first period is invoiced and
  charged as a renewal (`billing_reason` `subscription_cycle`, the billing cycle anchor being the
  trial end).
"""

from __future__ import annotations

import copy
from typing import Any

from webapp.sandbox.operations.invoicing import period_line, product_name
from webapp.sandbox.store import Store, diff

DAY = 86400
# "three days before a subscription's trial period is scheduled to end" (event reference).
TRIAL_WILL_END_SECONDS = 3 * DAY
MISSING_PAYMENT_METHOD = ("cancel", "create_invoice", "pause")


def start_trial(sub: dict[str, Any], now: int, days: int, missing_payment_method: str) -> None:
    """Make a new subscription trial for `days`: status `trialing`, its first period the trial,
    its billing cycle anchored at the trial's end."""
    end = now + days * DAY
    item = sub["items"]["data"][0]
    item["current_period_start"], item["current_period_end"] = now, end
    sub.update(
        status="trialing",
        trial_start=now,
        trial_end=end,
        billing_cycle_anchor=end,
        trial_settings={"end_behavior": {"missing_payment_method": missing_payment_method}},
    )


def trial_line(store: Store, sub: dict[str, Any], price: dict[str, Any]) -> dict[str, Any]:
    """The $0 line of a trial's first invoice, over the trial. Assumption: worded as Stripe's
    invoices word it ("Trial period for Professional")."""
    item = sub["items"]["data"][0]
    line = period_line(store, item, price, sub["trial_start"], sub["trial_end"], amount=0)
    line["description"] = f"Trial period for {product_name(store, price)}"
    line["unit_amount_decimal"] = "0"
    return line


def trial_will_end_due(sub: dict[str, Any]) -> int | None:
    """When `customer.subscription.trial_will_end` is due, or None (no trial, or sent)."""
    if sub["status"] != "trialing" or not sub.get("trial_end") or sub.get("_trial_will_end_sent"):
        return None
    # A trial shorter than three days is reminded at once (as it starts).
    return max(sub["trial_end"] - TRIAL_WILL_END_SECONDS, sub["trial_start"] or 0)


def send_trial_will_end(store: Store, sub: dict[str, Any]) -> dict[str, Any]:
    sub["_trial_will_end_sent"] = True
    store.save(sub)
    store.emit("customer.subscription.trial_will_end", sub)
    return sub


def ends_trial_without_card(store: Store, sub: dict[str, Any]) -> str | None:
    """At the trial's end: the missing-card behaviour to apply instead of billing (`cancel` or
    `pause`), or None to bill the first period as a renewal (a card is on file, or the
    behaviour is `create_invoice`, whose invoice then fails for want of a card)."""
    from webapp.sandbox.operations.payments import default_payment_method

    if sub["status"] != "trialing":
        return None
    customer = store.get("customer", sub["customer"])
    if default_payment_method(store, customer, sub) is not None:
        return None
    behaviour = sub["trial_settings"]["end_behavior"]["missing_payment_method"]
    return behaviour if behaviour in ("cancel", "pause") else None


def pause_at_trial_end(store: Store, sub: dict[str, Any]) -> dict[str, Any]:
    """`pause`: the subscription stays, `paused`, and nothing is invoiced until it is resumed."""
    before = copy.deepcopy(sub)
    sub["status"] = "paused"
    store.save(sub)
    store.emit("customer.subscription.updated", sub, diff(before, sub))
    store.emit("customer.subscription.paused", sub)
    return sub
