"""Coupons, promotion codes and discounts, as the pinned API version shows them.

Since basil a promotion code names its coupon at `promotion.coupon` (`promotion.type` "coupon")
and a discount at `source.coupon` (`source.type` "coupon"); shapes from Stripe's examples
(shared/stripe/fixtures3.json: coupon, promotion_code, discount) and the SDK's `_coupon.py`,
`_promotion_code.py`, `_discount.py`.
"""

from __future__ import annotations

from typing import Any

from webapp.sandbox.store import new_id

__all__ = ["coupon", "discount", "promotion_code"]


def coupon(now: int, *, coupon_id: str | None = None, **fields: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": coupon_id or new_id("", 8),
        "object": "coupon",
        "amount_off": None,
        "applies_to": None,
        "created": now,
        "currency": None,
        "duration": "once",
        "duration_in_months": None,
        "livemode": False,
        "max_redemptions": None,
        "metadata": {},
        "name": None,
        "percent_off": None,
        "redeem_by": None,
        "times_redeemed": 0,
        "valid": True,
    }
    obj.update(fields)
    return obj


def promotion_code(now: int, *, coupon_id: str, code: str, **fields: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": new_id("promo_"),
        "object": "promotion_code",
        "active": True,
        "code": code,
        "created": now,
        "customer": None,
        "customer_account": None,
        "expires_at": None,
        "livemode": False,
        "max_redemptions": None,
        "metadata": {},
        "promotion": {"coupon": coupon_id, "type": "coupon"},
        "restrictions": {
            "first_time_transaction": False,
            "minimum_amount": None,
            "minimum_amount_currency": None,
        },
        "times_redeemed": 0,
    }
    obj.update(fields)
    return obj


def discount(
    now: int,
    *,
    coupon_obj: dict[str, Any],
    customer_id: str,
    subscription_id: str | None,
    promotion_code_id: str | None,
    checkout_session_id: str | None,
    end: int | None,
) -> dict[str, Any]:
    """A coupon applied: `end` is set for a repeating coupon only ("If the coupon has a duration
    of once or forever, this attribute will be null", SDK `_discount.py`)."""
    return {
        "id": new_id("di_"),
        "object": "discount",
        "checkout_session": checkout_session_id,
        "customer": customer_id,
        "customer_account": None,
        "end": end,
        "invoice": None,
        "invoice_item": None,
        "promotion_code": promotion_code_id,
        "source": {"coupon": coupon_obj["id"], "type": "coupon"},
        "start": now,
        "subscription": subscription_id,
        "subscription_item": None,
    }
