"""Coupons and promotion codes: create, retrieve, list, update (and delete a coupon), with
Stripe's parameters (SDK `params/_coupon_*_params.py`, `params/_promotion_code_*_params.py`)."""

from __future__ import annotations

import re
from typing import Any

from webapp.sandbox import objects
from webapp.sandbox.api.routing import LIST, Call, merge_metadata, paginate, route
from webapp.sandbox.operations.discounts import coupon_valid
from webapp.sandbox.store import Store, new_id
from webapp.sandbox.wire import MAP, SCALAR, StripeAPIError, as_bool, as_int, invalid

DURATIONS = ("forever", "once", "repeating")
CODE_RE = re.compile(r"^[a-zA-Z0-9-]{1,500}$")

COUPON_CREATE = {
    "id": SCALAR,
    "name": SCALAR,
    "percent_off": SCALAR,
    "amount_off": SCALAR,
    "currency": SCALAR,
    "duration": SCALAR,
    "duration_in_months": SCALAR,
    "max_redemptions": SCALAR,
    "redeem_by": SCALAR,
    "metadata": MAP,
    "applies_to": {"products": [SCALAR]},
}
COUPON_UPDATE = {"name": SCALAR, "metadata": MAP}


def _positive(params: dict[str, Any], name: str) -> int | None:
    if name not in params:
        return None
    value = as_int(params[name], name)
    if value <= 0:
        raise invalid(f"Invalid {name}: must be a positive integer", param=name)
    return value


@route("/v1/coupons", "POST", COUPON_CREATE)
def create_coupon(call: Call) -> dict[str, Any]:
    params, store = call.params, call.store
    now = store.now()
    percent = params.get("percent_off")
    amount = params.get("amount_off")
    if (percent is None) == (amount is None):
        raise invalid(
            "You must pass exactly one of percent_off or amount_off.",
            param="percent_off" if percent is None else "amount_off",
        )
    fields: dict[str, Any] = {"name": params.get("name") or None}
    if percent is not None:
        try:
            percent_off = float(percent)
        except ValueError:
            raise invalid(f"Invalid decimal: {percent}", param="percent_off") from None
        if not 0 < percent_off <= 100:
            raise invalid(
                "Invalid percent_off: must be greater than 0 and at most 100", param="percent_off"
            )
        fields["percent_off"] = percent_off
    else:
        fields["amount_off"] = _positive(params, "amount_off")
        if not params.get("currency"):
            raise invalid(
                "You must pass currency when creating a coupon with amount_off.",
                param="currency",
            )
        fields["currency"] = str(params["currency"]).lower()
    duration = params.get("duration", "once")
    if duration not in DURATIONS:
        raise invalid(f"Invalid duration: must be one of {', '.join(DURATIONS)}", param="duration")
    fields["duration"] = duration
    months = _positive(params, "duration_in_months")
    if duration == "repeating" and months is None:
        raise invalid(
            "You must pass duration_in_months when duration is repeating.",
            param="duration_in_months",
        )
    if duration != "repeating" and months is not None:
        raise invalid(
            "duration_in_months may only be passed when duration is repeating.",
            param="duration_in_months",
        )
    fields["duration_in_months"] = months
    fields["max_redemptions"] = _positive(params, "max_redemptions")
    if "redeem_by" in params:
        redeem_by = as_int(params["redeem_by"], "redeem_by")
        if redeem_by <= now:
            raise invalid("redeem_by must be in the future.", param="redeem_by")
        fields["redeem_by"] = redeem_by
    if params.get("applies_to"):
        fields["applies_to"] = {"products": list(params["applies_to"].get("products") or [])}
    coupon_id = params.get("id") or None
    if coupon_id and store.find(coupon_id) is not None:
        raise StripeAPIError(
            400, "Coupon already exists.", code="resource_already_exists", param="id"
        )
    coupon = objects.coupon(
        now, coupon_id=coupon_id, metadata=merge_metadata(params.get("metadata")), **fields
    )
    store.save(coupon)
    store.emit("coupon.created", coupon)
    return coupon


def _coupon(store: Store, coupon_id: str, *, for_update: bool = False) -> dict[str, Any]:
    coupon = store.get("coupon", coupon_id, param="coupon", for_update=for_update)
    if coupon.get("_deleted"):
        raise store_missing("coupon", coupon_id)
    coupon["valid"] = coupon_valid(store, coupon)
    return coupon


def store_missing(name: str, object_id: str) -> StripeAPIError:
    return StripeAPIError(
        404, f"No such {name}: '{object_id}'", code="resource_missing", param="id"
    )


@route("/v1/coupons/<id>", "GET", {})
def retrieve_coupon(call: Call, id: str) -> dict[str, Any]:
    return _coupon(call.store, id)


@route("/v1/coupons", "GET", {**LIST, "created": SCALAR})
def list_coupons(call: Call) -> dict[str, Any]:
    items = [c for c in call.store.query("coupon") if not c.get("_deleted")]
    for coupon in items:
        coupon["valid"] = coupon_valid(call.store, coupon)
    return paginate(call, items)


@route("/v1/coupons/<id>", "POST", COUPON_UPDATE)
def update_coupon(call: Call, id: str) -> dict[str, Any]:
    coupon = _coupon(call.store, id, for_update=True)
    if "name" in call.params:
        coupon["name"] = call.params["name"] or None
    if "metadata" in call.params:
        coupon["metadata"] = merge_metadata(call.params["metadata"], coupon["metadata"])
    call.store.save(coupon)
    call.store.emit("coupon.updated", coupon)
    return coupon


@route("/v1/coupons/<id>", "DELETE", {})
def delete_coupon(call: Call, id: str) -> dict[str, Any]:
    """Deleting a coupon stops new redemptions; discounts already applied carry on."""
    coupon = _coupon(call.store, id, for_update=True)
    coupon["_deleted"] = True
    coupon["valid"] = False
    call.store.save(coupon)
    call.store.emit("coupon.deleted", coupon)
    return {"id": coupon["id"], "object": "coupon", "deleted": True}


# --- promotion codes ---------------------------------------------------------------------------

RESTRICTIONS = {
    "first_time_transaction": SCALAR,
    "minimum_amount": SCALAR,
    "minimum_amount_currency": SCALAR,
    "currency_options": MAP,
}
PROMOTION_CODE_CREATE = {
    "promotion": {"type": SCALAR, "coupon": SCALAR},
    "code": SCALAR,
    "active": SCALAR,
    "customer": SCALAR,
    "expires_at": SCALAR,
    "max_redemptions": SCALAR,
    "metadata": MAP,
    "restrictions": RESTRICTIONS,
}
PROMOTION_CODE_UPDATE = {
    "active": SCALAR,
    "metadata": MAP,
    "restrictions": {"currency_options": MAP},
}


def _active_with_code(store: Store, code: str) -> dict[str, Any] | None:
    return next(
        (
            promo
            for promo in store.query("promotion_code")
            if promo["active"] and promo["code"].lower() == code.lower()
        ),
        None,
    )


@route("/v1/promotion_codes", "POST", PROMOTION_CODE_CREATE)
def create_promotion_code(call: Call) -> dict[str, Any]:
    params, store = call.params, call.store
    now = store.now()
    promotion = params.get("promotion") or {}
    if promotion.get("type") != "coupon":
        raise invalid("Missing required param: promotion[type].", param="promotion[type]")
    if not promotion.get("coupon"):
        raise invalid("Missing required param: promotion[coupon].", param="promotion[coupon]")
    coupon = store.get("coupon", promotion["coupon"], param="promotion[coupon]")
    if coupon.get("_deleted"):
        raise store_missing("coupon", coupon["id"])
    code = params.get("code") or new_id("", 8).upper()
    if not CODE_RE.match(code):
        raise invalid("Invalid code: use letters, digits and dashes only.", param="code")
    active = as_bool(params.get("active", "true"), "active")
    if active and _active_with_code(store, code):
        raise StripeAPIError(
            400,
            f"An active promotion code with `code: {code}` already exists.",
            code="resource_already_exists",
            param="code",
        )
    fields: dict[str, Any] = {"active": active}
    if params.get("customer"):
        fields["customer"] = store.get("customer", params["customer"], param="customer")["id"]
    limit = _positive(params, "max_redemptions")
    if (
        limit is not None
        and coupon["max_redemptions"] is not None
        and (limit > coupon["max_redemptions"])
    ):
        raise invalid(
            "max_redemptions cannot be greater than the coupon's max_redemptions.",
            param="max_redemptions",
        )
    fields["max_redemptions"] = limit
    if "expires_at" in params:
        expires_at = as_int(params["expires_at"], "expires_at")
        if expires_at <= now:
            raise invalid("expires_at must be in the future.", param="expires_at")
        if coupon["redeem_by"] is not None and expires_at > coupon["redeem_by"]:
            raise invalid("expires_at cannot be after the coupon's redeem_by.", param="expires_at")
        fields["expires_at"] = expires_at
    raw = params.get("restrictions") or {}
    restrictions: dict[str, Any] = {
        "first_time_transaction": as_bool(
            raw.get("first_time_transaction", "false"), "restrictions[first_time_transaction]"
        ),
        "minimum_amount": None,
        "minimum_amount_currency": None,
    }
    if "minimum_amount" in raw:
        restrictions["minimum_amount"] = as_int(
            raw["minimum_amount"], "restrictions[minimum_amount]"
        )
        if not raw.get("minimum_amount_currency"):
            raise invalid(
                "You must pass minimum_amount_currency with minimum_amount.",
                param="restrictions[minimum_amount_currency]",
            )
        restrictions["minimum_amount_currency"] = str(raw["minimum_amount_currency"]).lower()
    promo = objects.promotion_code(
        now,
        coupon_id=coupon["id"],
        code=code,
        metadata=merge_metadata(params.get("metadata")),
        restrictions=restrictions,
        **fields,
    )
    store.save(promo)
    store.emit("promotion_code.created", promo)
    return promo


@route("/v1/promotion_codes/<id>", "GET", {})
def retrieve_promotion_code(call: Call, id: str) -> dict[str, Any]:
    return call.store.get("promotion_code", id, param="promotion_code")


@route(
    "/v1/promotion_codes",
    "GET",
    {
        **LIST,
        "active": SCALAR,
        "code": SCALAR,
        "coupon": SCALAR,
        "customer": SCALAR,
        "created": SCALAR,
    },
)
def list_promotion_codes(call: Call) -> dict[str, Any]:
    params = call.params
    items = call.store.query("promotion_code")
    if "active" in params:
        active = as_bool(params["active"], "active")
        items = [p for p in items if p["active"] == active]
    if params.get("code"):
        items = [p for p in items if p["code"].lower() == params["code"].lower()]
    if params.get("coupon"):
        items = [p for p in items if p["promotion"]["coupon"] == params["coupon"]]
    if params.get("customer"):
        items = [p for p in items if p["customer"] == params["customer"]]
    return paginate(call, items)


@route("/v1/promotion_codes/<id>", "POST", PROMOTION_CODE_UPDATE)
def update_promotion_code(call: Call, id: str) -> dict[str, Any]:
    store, params = call.store, call.params
    promo = store.get("promotion_code", id, param="promotion_code", for_update=True)
    if "active" in params:
        active = as_bool(params["active"], "active")
        if active and not promo["active"]:
            other = _active_with_code(store, promo["code"])
            if other is not None:
                raise StripeAPIError(
                    400,
                    f"An active promotion code with `code: {promo['code']}` already exists.",
                    code="resource_already_exists",
                    param="active",
                )
        promo["active"] = active
    if "metadata" in params:
        promo["metadata"] = merge_metadata(params["metadata"], promo["metadata"])
    store.save(promo)
    store.emit("promotion_code.updated", promo)
    return promo
