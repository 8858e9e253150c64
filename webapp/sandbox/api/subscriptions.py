"""Subscriptions: list, retrieve, update, cancel."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from webapp.sandbox import operations
from webapp.sandbox.api.routing import LIST, Call, merge_metadata, paginate, route
from webapp.sandbox.operations.changes import PAYMENT_BEHAVIORS, PRORATION_BEHAVIORS
from webapp.sandbox.store import Store, diff
from webapp.sandbox.wire import MAP, SCALAR, StripeAPIError, as_bool, as_int, invalid, refused

FEEDBACK = (
    "customer_service",
    "low_quality",
    "missing_features",
    "other",
    "switched_service",
    "too_complex",
    "too_expensive",
    "unused",
)
CANCELLATION_DETAILS = {"comment": SCALAR, "feedback": SCALAR}
# What a pending update may carry (docs.stripe.com/billing/subscriptions/
# pending-updates-reference); `off_session` only says how to charge, so it is allowed too.
PENDING_UPDATE_PARAMS = {
    "expand",
    "payment_behavior",
    "proration_behavior",
    "proration_date",
    "billing_cycle_anchor",
    "items",
    "trial_end",
    "trial_from_plan",
    "add_invoice_items",
    "off_session",
}


@route("/v1/subscriptions", "GET", {**LIST, "customer": SCALAR, "status": SCALAR, "price": SCALAR})
def list_subscriptions(call: Call) -> dict[str, Any]:
    items = call.store.query("subscription", customer=call.params.get("customer"))
    status = call.params.get("status")
    if status and status != "all":
        items = [item for item in items if item["status"] == status]
    elif not status:  # Stripe leaves canceled subscriptions out unless asked
        items = [item for item in items if item["status"] != "canceled"]
    if price := call.params.get("price"):
        items = [item for item in items if item["items"]["data"][0]["price"] == price]
    return paginate(call, items)


@route("/v1/subscriptions/<id>", "GET", {})
def retrieve_subscription(call: Call, id: str) -> dict[str, Any]:
    return call.store.get("subscription", id)


def _choice(
    params: dict[str, Any],
    key: str,
    choices: tuple[str, ...],
    default: str,
    name: Callable[[str], str] = str,
) -> str:
    value = params.get(key, default)
    if value not in choices:
        raise invalid(
            f"Invalid {name(key)}: must be one of {', '.join(choices)}",
            param=name(key),
            code="parameter_invalid_string",
        )
    return value


def _cancellation_details(sub: dict[str, Any], details: dict[str, Any]) -> None:
    if "feedback" in details and details["feedback"] not in ("", *FEEDBACK):
        raise invalid(
            f"Invalid cancellation_details[feedback]: must be one of {', '.join(FEEDBACK)}",
            param="cancellation_details[feedback]",
        )
    for key in ("comment", "feedback"):
        if key in details:
            sub["cancellation_details"][key] = details[key] or None


@route(
    "/v1/subscriptions/<id>",
    "POST",
    {
        "items": [
            {
                "id": SCALAR,
                "price": SCALAR,
                "plan": SCALAR,
                "quantity": SCALAR,
                "deleted": SCALAR,
                "metadata": MAP,
            }
        ],
        "proration_behavior": SCALAR,
        "proration_date": SCALAR,
        "billing_cycle_anchor": {"type": SCALAR},
        "cancel_at": SCALAR,
        "cancel_at_period_end": SCALAR,
        "cancellation_details": CANCELLATION_DETAILS,
        "metadata": MAP,
        "default_payment_method": SCALAR,
        "payment_behavior": SCALAR,
        "off_session": SCALAR,
        "description": SCALAR,
    },
)
def update_subscription(call: Call, id: str) -> dict[str, Any]:
    params, store = call.params, call.store
    sub = store.get("subscription", id, for_update=True)
    before = copy.deepcopy(sub)
    if sub["status"] == "canceled" and set(params) - {"metadata", "cancellation_details", "expand"}:
        raise refused(
            "A canceled subscription can only update its cancellation_details and metadata."
        )
    change = requested_change(store, sub, params)
    if change.payment_behavior == "pending_if_incomplete" and (
        unsupported := sorted(set(params) - PENDING_UPDATE_PARAMS)
    ):
        # Assumption: Stripe's wording; the rule is documented (pending-updates-reference).
        raise invalid(
            "When `payment_behavior` is `pending_if_incomplete`, you can only pass the "
            f"parameters supported by pending updates; received: {', '.join(unsupported)}.",
            param=unsupported[0],
        )
    if change.price or change.quantity or change.anchor_now:
        sub = operations.apply_change(store, sub, change)
    if (
        "cancel_at" in params
        and "cancel_at_period_end" in params
        and params["cancel_at"] != ""
        and as_bool(params["cancel_at_period_end"], "cancel_at_period_end")
    ):
        raise invalid(
            "You may only specify one of these parameters: cancel_at, cancel_at_period_end.",
            param="cancel_at",
        )
    if "cancel_at_period_end" in params:
        cancel = as_bool(params["cancel_at_period_end"], "cancel_at_period_end")
        if cancel or "cancel_at" not in params:
            sub = operations.set_cancel_at_period_end(store, sub, cancel)
    if "cancel_at" in params:
        sub = operations.set_cancel_at(
            store, sub, params["cancel_at"], proration_behavior=change.proration_behavior
        )
    if "metadata" in params:
        sub["metadata"] = merge_metadata(params["metadata"], sub["metadata"])
    for item in params.get("items") or []:
        if "metadata" in item:
            target = sub["items"]["data"][0]
            target["metadata"] = merge_metadata(item["metadata"], target["metadata"])
    if "description" in params:
        sub["description"] = params["description"] or None
    if "default_payment_method" in params:
        store.get(
            "payment_method", params["default_payment_method"], param="default_payment_method"
        )
        sub["default_payment_method"] = params["default_payment_method"]
    if "cancellation_details" in params:
        _cancellation_details(sub, params["cancellation_details"])
    store.save(sub)
    changes = diff(before, sub)
    if changes:
        store.emit("customer.subscription.updated", sub, changes)
    return sub


def requested_change(
    store: Store, sub: dict[str, Any], params: dict[str, Any], prefix: str = ""
) -> operations.Change:
    """The change `params` ask of `sub` (an update's parameters, or a preview's
    `subscription_details`, whose errors name `prefix[...]`)."""

    def name(param: str) -> str:
        head, _, rest = param.partition("[")
        return f"{prefix}[{head}]{'[' + rest if rest else ''}" if prefix else param

    change = operations.Change(
        proration_behavior=_choice(
            params, "proration_behavior", PRORATION_BEHAVIORS, "create_prorations", name
        ),
        payment_behavior=_choice(
            params, "payment_behavior", PAYMENT_BEHAVIORS, "allow_incomplete", name
        ),
        # "Defaults to false (on-session)" (SDK subscription update params, off_session).
        off_session=as_bool(params.get("off_session", False), name("off_session")),
    )
    current = sub["items"]["data"][0]
    for index, item in enumerate(params.get("items") or []):
        where = name(f"items[{index}]")
        if item.get("id") and item["id"] != current["id"]:
            raise StripeAPIError(
                404,
                f"No such subscription item: '{item['id']}'",
                code="resource_missing",
                param=f"{where}[id]",
            )
        if not item.get("id") or as_bool(item.get("deleted", False), f"{where}[deleted]"):
            raise invalid(
                "The sandbox supports subscriptions with exactly one item: pass that item's "
                "`id` to change its price or quantity.",
                param=where,
            )
        price_id = item.get("price") or item.get("plan")
        if price_id and price_id != current["price"]:
            price = store.get("price", price_id, param=f"{where}[price]")
            if not price["active"]:
                raise invalid(
                    f"The price specified is inactive: {price['id']}", param=f"{where}[price]"
                )
            if price["type"] != "recurring" or price["currency"] != sub["currency"]:
                raise invalid(
                    f"The price `{price['id']}` cannot be used for this subscription.",
                    param=f"{where}[price]",
                )
            change.price = price
        if "quantity" in item:
            quantity = as_int(item["quantity"], f"{where}[quantity]")
            if quantity < 1:
                raise invalid("Invalid quantity: must be at least 1", param=f"{where}[quantity]")
            if quantity != current["quantity"]:
                change.quantity = quantity
    if "billing_cycle_anchor" in params:
        anchor = params["billing_cycle_anchor"].get("type")
        if anchor not in ("now", "unchanged"):
            # "For existing subscriptions, the value can only be set to now or unchanged."
            raise invalid(
                "Invalid billing_cycle_anchor[type]: must be one of now, unchanged",
                param=name("billing_cycle_anchor[type]"),
            )
        change.anchor_now = anchor == "now"
    if "proration_date" in params:
        when = as_int(params["proration_date"], name("proration_date"))
        start, end = current["current_period_start"], current["current_period_end"]
        if not start <= when <= end:
            # Assumption: Stripe's wording; the rule is its own ("must be within the current
            # subscription period", SDK create_preview params, proration_date).
            raise invalid(
                "proration_date must be within the current subscription period.",
                param=name("proration_date"),
            )
        change.proration_date = when
    return change


@route(
    "/v1/subscriptions/<id>",
    "DELETE",
    {"invoice_now": SCALAR, "prorate": SCALAR, "cancellation_details": CANCELLATION_DETAILS},
)
def cancel_subscription(call: Call, id: str) -> dict[str, Any]:
    params, store = call.params, call.store
    sub = store.get("subscription", id, for_update=True)
    if "cancellation_details" in params:
        _cancellation_details(sub, params["cancellation_details"])
    return operations.cancel_now(
        store,
        sub,
        prorate=as_bool(params.get("prorate", False), "prorate"),
        invoice_now=as_bool(params.get("invoice_now", False), "invoice_now"),
    )
