"""Coupons at work: redeeming a promotion code, and taking a subscription's discounts off its
invoices for as long as the coupon lasts.

What Stripe documents and the sandbox follows (docs.stripe.com/billing/subscriptions/coupons;
SDK `_coupon.py`, `_discount.py`, `_invoice.py`, `_invoice_line_item.py`):

- A coupon is `percent_off`, or `amount_off` in its `currency`, taken off the subtotal of the
  invoice's discountable lines (proration invoice items are not discountable); never below zero.
- `duration`: `once` (the first invoice only), `repeating` (every invoice for
  `duration_in_months` from when it was applied: the discount's `end`), or `forever`.
- A coupon stops being `valid` once `redeem_by` has passed or it was redeemed `max_redemptions`
  times; a promotion code can be redeemed while it is `active`, before its `expires_at`, fewer
  than its `max_redemptions` times, while its coupon is valid, and (with
  `restrictions.first_time_transaction`) only by a customer with no paid invoice yet.
- The invoice shows each discount in `discounts`, `total_discount_amounts` and (since 2025)
  `total_pretax_credit_amounts`; each line the share it got in `discount_amounts` and
  `pretax_credit_amounts`. `subtotal` stays; `total` and so `amount_due` fall.

Assumptions (Stripe does not say): a percentage is rounded half up to the cent per line; an
amount off is spread over the lines in order; a subscription's discounts are invoice-level, so
each line's own `discounts` stays empty. The hosted page's words for a code that cannot be
used are ours (Stripe publishes none): see `REFUSALS`.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from webapp.sandbox import objects
from webapp.sandbox.store import Store
from webapp.sandbox.wire import StripeAPIError

# What the hosted Checkout page says for each reason a code cannot be used.
REFUSALS = {
    "unknown": "This code is invalid.",
    "inactive": "This code is no longer active.",
    "expired": "This code has expired.",
    "exhausted": "This code has been fully redeemed.",
    "first_time": "This code is only for first-time customers.",
    "minimum": "This code needs a larger order.",
    "customer": "This code is invalid.",
}


class RedemptionError(StripeAPIError):
    """A promotion code that cannot be used now; `reason` is a key of REFUSALS. A StripeAPIError,
    so a payment it stops is rolled back and its page shows the words."""

    def __init__(self, reason: str) -> None:
        super().__init__(400, REFUSALS[reason], param="promotion_code")
        self.reason = reason


def coupon_valid(store: Store, coupon: dict[str, Any]) -> bool:
    """ "Taking account of the above properties, whether this coupon can still be applied to a
    customer" (SDK `_coupon.py`, valid)."""
    if coupon.get("_deleted"):
        return False
    if coupon["redeem_by"] is not None and store.now() >= coupon["redeem_by"]:
        return False
    limit = coupon["max_redemptions"]
    return limit is None or coupon["times_redeemed"] < limit


def promotion_code_refusal(store: Store, promo: dict[str, Any]) -> str | None:
    """Why `promo` cannot be redeemed by anyone now, or None."""
    coupon = store.find(promo["promotion"]["coupon"]) or {}
    if not promo["active"]:
        return "inactive"
    if promo["expires_at"] is not None and store.now() >= promo["expires_at"]:
        return "expired"
    if coupon.get("redeem_by") is not None and store.now() >= coupon["redeem_by"]:
        return "expired"
    limit = promo["max_redemptions"]
    if limit is not None and promo["times_redeemed"] >= limit:
        return "exhausted"
    if coupon.get("object") != "coupon" or not coupon_valid(store, coupon):
        return "exhausted" if coupon.get("object") == "coupon" else "unknown"
    return None


def find_promotion_code(store: Store, code: str) -> dict[str, Any]:
    """The promotion code a customer typed (case-insensitive, as Stripe matches codes): the
    active one if there is one, else the newest, so the refusal can say why."""
    wanted = code.strip().lower()
    matches = [p for p in store.query("promotion_code") if p["code"].lower() == wanted]
    if not wanted or not matches:
        raise RedemptionError("unknown")
    return next((p for p in matches if p["active"]), matches[0])


def check_redemption(
    store: Store, promo: dict[str, Any], *, customer_id: str | None, subtotal: int, currency: str
) -> dict[str, Any]:
    """The promotion code's coupon, if this customer may redeem the code on this order."""
    refusal = promotion_code_refusal(store, promo)
    if refusal:
        raise RedemptionError(refusal)
    if promo["customer"] and promo["customer"] != customer_id:
        raise RedemptionError("customer")
    restrictions = promo["restrictions"]
    if restrictions.get("first_time_transaction") and customer_id and has_paid(store, customer_id):
        raise RedemptionError("first_time")
    minimum = restrictions.get("minimum_amount")
    if minimum is not None and (
        subtotal < minimum or restrictions.get("minimum_amount_currency") != currency
    ):
        raise RedemptionError("minimum")
    coupon = store.get("coupon", promo["promotion"]["coupon"])
    if coupon["amount_off"] is not None and coupon["currency"] != currency:
        raise RedemptionError("unknown")
    return coupon


def has_paid(store: Store, customer_id: str) -> bool:
    """ "Customers without any successful payments or invoices" are first-time customers (SDK
    promotion code params, first_time_transaction)."""
    return any(inv["status"] == "paid" for inv in store.query("invoice", customer=customer_id))


def discount_amount(coupon: dict[str, Any], discountable: int) -> int:
    """What the coupon takes off `discountable` cents."""
    if discountable <= 0:
        return 0
    if coupon["percent_off"] is not None:
        off = Decimal(discountable) * Decimal(str(coupon["percent_off"])) / 100
        return min(int(off.quantize(Decimal(1), rounding=ROUND_HALF_UP)), discountable)
    return min(int(coupon["amount_off"] or 0), discountable)


def redeem(
    store: Store,
    promo: dict[str, Any],
    coupon: dict[str, Any],
    *,
    customer_id: str,
    subscription_id: str,
    checkout_session_id: str | None,
) -> dict[str, Any]:
    """Apply the code's coupon to a subscription: a Discount, and one more redemption each."""
    now = store.now()
    end = None
    if coupon["duration"] == "repeating":
        end = objects.add_interval(now, "month", int(coupon["duration_in_months"]))
    discount = objects.discount(
        now,
        coupon_obj=coupon,
        customer_id=customer_id,
        subscription_id=subscription_id,
        promotion_code_id=promo["id"],
        checkout_session_id=checkout_session_id,
        end=end,
    )
    discount["_duration"] = coupon["duration"]
    store.save(discount)
    coupon["times_redeemed"] += 1
    coupon["valid"] = coupon_valid(store, coupon)
    store.save(coupon)
    promo["times_redeemed"] += 1
    store.save(promo)
    store.emit("customer.discount.created", discount)
    return discount


def live_discounts(store: Store, sub: dict[str, Any], at: int) -> list[dict[str, Any]]:
    """The subscription's discounts that still apply to an invoice made at `at`."""
    found = []
    for discount_id in sub.get("discounts") or []:
        discount = store.find(discount_id)
        if discount is None or (discount["end"] is not None and at >= discount["end"]):
            continue
        if discount.get("_duration") == "once" and discount.get("_used_on"):
            continue
        found.append(discount)
    return found


def apply_discounts(store: Store, invoice: dict[str, Any], sub: dict[str, Any]) -> None:
    """Take the subscription's live discounts off the invoice (saved nowhere: previews too)."""
    lines = invoice["lines"]["data"]
    total_off = 0
    for discount in live_discounts(store, sub, invoice["created"]):
        coupon = store.find(discount["source"]["coupon"]) or {}
        eligible = [line for line in lines if line["discountable"] and _net(line) > 0 and coupon]
        left = discount_amount(coupon, sum(_net(line) for line in eligible)) if coupon else 0
        if coupon.get("percent_off") is not None:
            shares = [discount_amount(coupon, _net(line)) for line in eligible]
            # Rounded per line; the total stays the coupon's rounded share of the whole.
            if shares:
                shares[-1] += left - sum(shares)
        else:
            shares = []
            for line in eligible:
                share = min(left - sum(shares), _net(line))
                shares.append(share)
        applied = 0
        for line, share in zip(eligible, shares, strict=True):
            if share <= 0:
                continue
            line["discount_amounts"].append({"amount": share, "discount": discount["id"]})
            line["pretax_credit_amounts"].append(_credit(share, discount["id"]))
            applied += share
        invoice["discounts"].append(discount["id"])
        invoice["total_discount_amounts"].append({"amount": applied, "discount": discount["id"]})
        invoice["total_pretax_credit_amounts"].append(_credit(applied, discount["id"]))
        total_off += applied
    if total_off:
        invoice["total"] -= total_off
        invoice["total_excluding_tax"] -= total_off
        invoice["amount_due"] = invoice["amount_remaining"] = max(invoice["total"], 0)


def _net(line: dict[str, Any]) -> int:
    return line["amount"] - sum(d["amount"] for d in line["discount_amounts"])


def _credit(amount: int, discount_id: str) -> dict[str, Any]:
    return {
        "amount": amount,
        "credit_balance_transaction": None,
        "discount": discount_id,
        "type": "discount",
    }


def after_invoiced(store: Store, sub: dict[str, Any], invoice: dict[str, Any]) -> None:
    """A `once` discount is spent on the first invoice it applied to, and a repeating one ends
    at its `end`: either leaves the subscription (`customer.discount.deleted`)."""
    kept = []
    for discount_id in sub.get("discounts") or []:
        discount = store.find(discount_id)
        if discount is None:
            continue
        spent = discount.get("_duration") == "once" and discount_id in invoice["discounts"]
        ended = discount["end"] is not None and invoice["created"] >= discount["end"]
        if spent or ended:
            discount["_used_on"] = invoice["id"]
            store.save(discount)
            store.emit("customer.discount.deleted", discount)
        else:
            kept.append(discount_id)
    if kept != (sub.get("discounts") or []):
        sub["discounts"] = kept
        store.save(sub)
