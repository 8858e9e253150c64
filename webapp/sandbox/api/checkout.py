"""Checkout Sessions (subscription mode) and their line items."""

from __future__ import annotations

from typing import Any

from webapp.sandbox import objects, operations
from webapp.sandbox.api.routing import LIST, Call, includable, merge_metadata, paginate, route
from webapp.sandbox.operations import trials
from webapp.sandbox.store import Store, new_id
from webapp.sandbox.wire import MAP, SCALAR, as_bool, as_int, invalid

SESSION_CREATE = {
    "mode": SCALAR,
    "customer": SCALAR,
    "customer_email": SCALAR,
    "line_items": [{"price": SCALAR, "quantity": SCALAR}],
    "client_reference_id": SCALAR,
    "metadata": MAP,
    "subscription_data": {
        "metadata": MAP,
        "description": SCALAR,
        "billing_mode": {"type": SCALAR, "flexible": {"proration_discounts": SCALAR}},
        "trial_period_days": SCALAR,
        "trial_settings": {"end_behavior": {"missing_payment_method": SCALAR}},
    },
    "payment_method_collection": SCALAR,
    "allow_promotion_codes": SCALAR,
    "success_url": SCALAR,
    "cancel_url": SCALAR,
    "expires_at": SCALAR,
    "payment_method_types": [SCALAR],
    "billing_address_collection": SCALAR,
    "locale": SCALAR,
    "ui_mode": SCALAR,
}


@route("/v1/checkout/sessions", "POST", SESSION_CREATE)
def create_checkout_session(call: Call) -> dict[str, Any]:
    params, store = call.params, call.store
    if params.get("mode") != "subscription":
        raise invalid(
            "The sandbox supports only `mode=subscription` Checkout Sessions.", param="mode"
        )
    if params.get("customer") and params.get("customer_email"):
        raise invalid(
            "You may only specify one of these parameters: customer, customer_email.",
            param="customer_email",
        )
    if params.get("customer"):
        store.get("customer", params["customer"], param="customer")
    line_items = params.get("line_items") or []
    if len(line_items) != 1:
        raise invalid("Provide exactly one line item with a recurring price.", param="line_items")
    price = store.get("price", line_items[0].get("price"), param="line_items[0][price]")
    if not price["active"] or price["type"] != "recurring":
        raise invalid(
            f"The price `{price['id']}` is not an active recurring price.",
            param="line_items[0][price]",
        )
    quantity = as_int(line_items[0].get("quantity", 1), "line_items[0][quantity]")
    if not params.get("success_url"):
        raise invalid("Missing required param: success_url.", param="success_url")
    now = store.now()
    expires_at = as_int(params.get("expires_at", now + 24 * 3600), "expires_at")
    if not now + 1800 <= expires_at <= now + 24 * 3600:
        raise invalid(
            "The `expires_at` timestamp must be between 30 minutes and 24 hours from now.",
            param="expires_at",
        )
    subscription_data = params.get("subscription_data") or {}
    billing_mode = (subscription_data.get("billing_mode") or {}).get("type", "flexible")
    proration_discounts = ((subscription_data.get("billing_mode") or {}).get("flexible") or {}).get(
        "proration_discounts"
    )
    if proration_discounts not in (None, "included", "itemized"):
        raise invalid(
            "Invalid subscription_data[billing_mode][flexible][proration_discounts]: must be one "
            "of included, itemized",
            param="subscription_data[billing_mode][flexible][proration_discounts]",
        )
    if billing_mode not in ("classic", "flexible"):
        raise invalid(
            "Invalid subscription_data[billing_mode][type]: must be one of classic, flexible",
            param="subscription_data[billing_mode][type]",
        )
    trial_days, missing_payment_method = _trial(subscription_data)
    collection = params.get("payment_method_collection", "always")
    if collection not in ("always", "if_required"):
        raise invalid(
            "Invalid payment_method_collection: must be one of always, if_required",
            param="payment_method_collection",
        )
    subtotal = price["unit_amount"] * quantity
    session_id = new_id("cs_test_", 58)
    session = objects.checkout_session(
        now,
        session_id=session_id,
        url=f"{call.public_base}sandbox/checkout/{session_id}",
        allow_promotion_codes=(
            as_bool(params["allow_promotion_codes"], "allow_promotion_codes")
            if "allow_promotion_codes" in params
            else None
        ),
        # What is due today: nothing during a trial (the price comes at its end).
        amount_subtotal=0 if trial_days else subtotal,
        amount_total=0 if trial_days else subtotal,
        payment_method_collection=collection,
        cancel_url=params.get("cancel_url"),
        client_reference_id=params.get("client_reference_id"),
        currency=price["currency"],
        customer=params.get("customer"),
        customer_email=params.get("customer_email"),
        expires_at=expires_at,
        locale=params.get("locale"),
        metadata=merge_metadata(params.get("metadata")),
        success_url=params["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id),
        _line_items=[{"price": price["id"], "quantity": quantity}],
        _subscription_metadata=merge_metadata(subscription_data.get("metadata")),
        _billing_mode=billing_mode,
        _proration_discounts=proration_discounts,
        _trial_period_days=trial_days,
        _trial_missing_payment_method=missing_payment_method,
    )
    store.save(session)
    return session


def _trial(subscription_data: dict[str, Any]) -> tuple[int | None, str]:
    """`subscription_data.trial_period_days` ("Has to be at least 1", SDK params; at most 730,
    docs.stripe.com/billing/subscriptions/trials) and what a trial ending with no card does
    (Stripe's default: `create_invoice`)."""
    days = None
    if "trial_period_days" in subscription_data:
        param = "subscription_data[trial_period_days]"
        days = as_int(subscription_data["trial_period_days"], param)
        if not 1 <= days <= 730:
            raise invalid(f"{param} must be between 1 and 730.", param=param)
    end_behavior = (subscription_data.get("trial_settings") or {}).get("end_behavior") or {}
    missing = end_behavior.get("missing_payment_method", "create_invoice")
    if missing not in trials.MISSING_PAYMENT_METHOD:
        raise invalid(
            "Invalid subscription_data[trial_settings][end_behavior][missing_payment_method]: "
            "must be one of cancel, create_invoice, pause",
            param="subscription_data[trial_settings][end_behavior][missing_payment_method]",
        )
    return days, missing


@route(
    "/v1/checkout/sessions",
    "GET",
    {**LIST, "customer": SCALAR, "subscription": SCALAR, "status": SCALAR},
)
def list_checkout_sessions(call: Call) -> dict[str, Any]:
    operations.expire_overdue_sessions(call.store)
    items = call.store.query("checkout.session", customer=call.params.get("customer"))
    for key in ("subscription", "status"):
        if key in call.params:
            items = [item for item in items if item[key] == call.params[key]]
    return paginate(call, items)


@route("/v1/checkout/sessions/<id>", "GET", {})
def retrieve_checkout_session(call: Call, id: str) -> dict[str, Any]:
    operations.expire_overdue_sessions(call.store)
    return call.store.get("checkout.session", id, param="session")


@route("/v1/checkout/sessions/<id>/expire", "POST", {})
def expire_checkout_session(call: Call, id: str) -> dict[str, Any]:
    call.store.get("checkout.session", id, param="session")
    return operations.expire_checkout_session(call.store, id)


@route("/v1/checkout/sessions/<id>/line_items", "GET", LIST)
def list_session_line_items(call: Call, id: str) -> dict[str, Any]:
    session = call.store.get("checkout.session", id, param="session")
    return paginate(call, session_line_items(call.store, session)["data"])


@includable("checkout.session", "line_items")
def session_line_items(store: Store, session: dict[str, Any]) -> dict[str, Any]:
    """A session's line items as Stripe's `item` objects (only shown when asked for)."""
    items = []
    for index, line in enumerate(session["_line_items"]):
        price = store.get("price", line["price"])
        amount = price["unit_amount"] * line["quantity"]
        product = store.find(price["product"]) or {}
        items.append(
            {
                "id": f"li_{session['id'][8:30]}{index}",
                "object": "item",
                "adjustable_quantity": None,
                "amount_discount": 0,
                "amount_subtotal": amount,
                "amount_tax": 0,
                "amount_total": amount,
                "currency": price["currency"],
                "description": product.get("name"),
                "metadata": {},
                "price": price,
                "quantity": line["quantity"],
            }
        )
    return objects.list_object(items, f"/v1/checkout/sessions/{session['id']}/line_items")
