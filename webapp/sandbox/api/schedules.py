"""Subscription schedules: create (`from_subscription`, or `customer` + `phases`), retrieve,
list, update, release, cancel (SDK `_subscription_schedule_service.py` and its params)."""

from __future__ import annotations

from typing import Any

from webapp.sandbox.api.routing import LIST, Call, merge_metadata, paginate, route
from webapp.sandbox.operations import schedules
from webapp.sandbox.wire import MAP, SCALAR, as_bool, invalid

PHASE_ITEM = {"price": SCALAR, "plan": SCALAR, "quantity": SCALAR, "metadata": MAP}
PHASE = {
    "items": [PHASE_ITEM],
    "end_date": SCALAR,
    "duration": {"interval": SCALAR, "interval_count": SCALAR},
    "proration_behavior": SCALAR,
    "metadata": MAP,
    "currency": SCALAR,
    "description": SCALAR,
}
END_BEHAVIORS = ("release", "cancel")


def _end_behavior(params: dict[str, Any]) -> str:
    value = params.get("end_behavior", "release")
    if value not in END_BEHAVIORS:
        # `renew` and `none` are legacy values Stripe only shows (changelog 2019-10-17).
        raise invalid("Invalid end_behavior: must be one of release, cancel", param="end_behavior")
    return value


@route(
    "/v1/subscription_schedules",
    "POST",
    {
        "customer": SCALAR,
        "from_subscription": SCALAR,
        "phases": [PHASE],
        "start_date": SCALAR,
        "end_behavior": SCALAR,
        "metadata": MAP,
        "billing_mode": {"type": SCALAR, "flexible": {"proration_discounts": SCALAR}},
    },
)
def create_schedule(call: Call) -> dict[str, Any]:
    params, store = call.params, call.store
    if params.get("from_subscription"):
        # "When using this parameter, other parameters (such as phase values) cannot be set."
        others = sorted(set(params) - {"from_subscription", "expand", "metadata"})
        if others:
            raise invalid(
                f"You cannot set `{others[0]}` when using `from_subscription`.", param=others[0]
            )
        sub = store.get(
            "subscription", params["from_subscription"], param="from_subscription", for_update=True
        )
        return schedules.from_subscription(
            store, sub, metadata=merge_metadata(params.get("metadata"))
        )
    if not params.get("customer"):
        raise invalid(
            "Missing required param: customer.", param="customer", code="parameter_missing"
        )
    customer = store.get("customer", params["customer"], param="customer")
    mode = (params.get("billing_mode") or {}).get("type", "flexible")
    if mode not in ("classic", "flexible"):
        raise invalid("Invalid billing_mode[type]", param="billing_mode[type]")
    return schedules.create_for_customer(
        store,
        customer,
        params.get("phases") or [],
        start_date=params.get("start_date"),
        end_behavior=_end_behavior(params),
        metadata=merge_metadata(params.get("metadata")),
        billing_mode=mode,
    )


@route(
    "/v1/subscription_schedules",
    "GET",
    {**LIST, "customer": SCALAR, "scheduled": SCALAR},
)
def list_schedules(call: Call) -> dict[str, Any]:
    items = call.store.query("subscription_schedule", customer=call.params.get("customer"))
    if "scheduled" in call.params:
        # "Only return subscription schedules that have not started yet."
        waiting = as_bool(call.params["scheduled"], "scheduled")
        items = [item for item in items if (item["status"] == "not_started") == waiting]
    return paginate(call, items)


@route("/v1/subscription_schedules/<id>", "GET", {})
def retrieve_schedule(call: Call, id: str) -> dict[str, Any]:
    return call.store.get("subscription_schedule", id, param="schedule")


UPDATE_PHASE = {**PHASE, "start_date": SCALAR, "trial_end": SCALAR}


@route(
    "/v1/subscription_schedules/<id>",
    "POST",
    {
        "phases": [UPDATE_PHASE],
        "end_behavior": SCALAR,
        "metadata": MAP,
        "proration_behavior": SCALAR,
    },
)
def update_schedule(call: Call, id: str) -> dict[str, Any]:
    params, store = call.params, call.store
    schedule = store.get("subscription_schedule", id, param="schedule", for_update=True)
    changes: dict[str, Any] = {}
    if "end_behavior" in params:
        changes["end_behavior"] = _end_behavior(params)
    if "metadata" in params:
        changes["metadata"] = merge_metadata(params["metadata"], schedule["metadata"])
    if "phases" in params:
        changes["phases"] = params["phases"]
    if "proration_behavior" in params:
        if params["proration_behavior"] not in ("always_invoice", "create_prorations", "none"):
            raise invalid("Invalid proration_behavior", param="proration_behavior")
        changes["proration_behavior"] = params["proration_behavior"]
    return schedules.update(store, schedule, changes)


@route("/v1/subscription_schedules/<id>/release", "POST", {"preserve_cancel_date": SCALAR})
def release_schedule(call: Call, id: str) -> dict[str, Any]:
    store = call.store
    schedule = store.get("subscription_schedule", id, param="schedule", for_update=True)
    preserve = as_bool(call.params.get("preserve_cancel_date", False), "preserve_cancel_date")
    schedules.release(store, schedule, preserve_cancel_date=preserve)
    return store.get("subscription_schedule", id)


@route(
    "/v1/subscription_schedules/<id>/cancel",
    "POST",
    {"invoice_now": SCALAR, "prorate": SCALAR},
)
def cancel_schedule(call: Call, id: str) -> dict[str, Any]:
    store = call.store
    schedule = store.get("subscription_schedule", id, param="schedule", for_update=True)
    schedules.cancel(
        store,
        schedule,
        invoice_now=as_bool(call.params.get("invoice_now", True), "invoice_now"),
        prorate=as_bool(call.params.get("prorate", True), "prorate"),
    )
    return store.get("subscription_schedule", id)
