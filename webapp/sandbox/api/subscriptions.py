"""Subscriptions: list, retrieve, update, cancel."""

from __future__ import annotations

import copy
from typing import Any

from webapp.sandbox import operations
from webapp.sandbox.api.routing import LIST, Call, merge_metadata, paginate, route
from webapp.sandbox.store import diff
from webapp.sandbox.wire import MAP, SCALAR, StripeAPIError, as_bool, invalid


@route("/v1/subscriptions", "GET", {**LIST, "customer": SCALAR, "status": SCALAR, "price": SCALAR})
def list_subscriptions(call: Call) -> dict[str, Any]:
    items = call.store.query("subscription", customer=call.params.get("customer"))
    status = call.params.get("status")
    if status and status != "all":
        items = [item for item in items if item["status"] == status]
    elif not status:  # Stripe leaves canceled subscriptions out unless asked
        items = [item for item in items if item["status"] != "canceled"]
    if price := call.params.get("price"):
        items = [item for item in items if item["items"]["data"][0]["price"]["id"] == price]
    return paginate(call, items)


@route("/v1/subscriptions/<id>", "GET", {})
def retrieve_subscription(call: Call, id: str) -> dict[str, Any]:
    return call.store.get("subscription", id)


@route(
    "/v1/subscriptions/<id>",
    "POST",
    {
        "items": [{"id": SCALAR, "price": SCALAR, "quantity": SCALAR, "deleted": SCALAR}],
        "proration_behavior": SCALAR,
        "cancel_at_period_end": SCALAR,
        "metadata": MAP,
        "default_payment_method": SCALAR,
        "payment_behavior": SCALAR,
        "description": SCALAR,
        "cancellation_details": {"comment": SCALAR, "feedback": SCALAR},
    },
)
def update_subscription(call: Call, id: str) -> dict[str, Any]:
    params, store = call.params, call.store
    sub = store.get("subscription", id, for_update=True)
    before = copy.deepcopy(sub)
    if sub["status"] == "canceled" and set(params) - {"metadata", "cancellation_details", "expand"}:
        raise invalid(
            "A canceled subscription can only update its cancellation_details and metadata."
        )
    behavior = params.get("proration_behavior", "create_prorations")
    if behavior not in ("create_prorations", "always_invoice", "none"):
        raise invalid(f"Invalid proration_behavior: {behavior}", param="proration_behavior")
    for index, item in enumerate(params.get("items") or []):
        current = sub["items"]["data"][0]
        if item.get("id") and item["id"] != current["id"]:
            raise StripeAPIError(
                404,
                f"No such subscription item: '{item['id']}'",
                code="resource_missing",
                param=f"items[{index}][id]",
            )
        if item.get("price"):
            price = store.get("price", item["price"], param=f"items[{index}][price]")
            if not price["active"]:
                raise invalid(
                    f"The price specified is inactive: {price['id']}",
                    param=f"items[{index}][price]",
                )
            sub = operations.change_price(
                store,
                sub,
                price,
                behavior,
                payment_behavior=params.get("payment_behavior", "allow_incomplete"),
            )
    if "cancel_at_period_end" in params:
        cancel = as_bool(params["cancel_at_period_end"], "cancel_at_period_end")
        sub = operations.set_cancel_at_period_end(store, sub, cancel)
    if "metadata" in params:
        sub["metadata"] = merge_metadata(params["metadata"], sub["metadata"])
    if "description" in params:
        sub["description"] = params["description"] or None
    if "default_payment_method" in params:
        store.get(
            "payment_method", params["default_payment_method"], param="default_payment_method"
        )
        sub["default_payment_method"] = params["default_payment_method"]
    if "cancellation_details" in params:
        sub["cancellation_details"].update(params["cancellation_details"])
    store.save(sub)
    changes = diff(before, sub)
    if changes:
        store.emit("customer.subscription.updated", sub, changes)
    return sub


@route(
    "/v1/subscriptions/<id>",
    "DELETE",
    {
        "invoice_now": SCALAR,
        "prorate": SCALAR,
        "cancellation_details": {"comment": SCALAR, "feedback": SCALAR},
    },
)
def cancel_subscription(call: Call, id: str) -> dict[str, Any]:
    return operations.cancel_now(call.store, id)
