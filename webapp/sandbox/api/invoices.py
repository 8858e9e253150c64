"""Invoices and events."""

from __future__ import annotations

from typing import Any

from webapp.sandbox.api.routing import LIST, Call, paginate, route
from webapp.sandbox.wire import SCALAR


@route(
    "/v1/invoices", "GET", {**LIST, "customer": SCALAR, "subscription": SCALAR, "status": SCALAR}
)
def list_invoices(call: Call) -> dict[str, Any]:
    items = call.store.query("invoice", customer=call.params.get("customer"))
    if sub := call.params.get("subscription"):
        items = [i for i in items if i["parent"]["subscription_details"]["subscription"] == sub]
    if status := call.params.get("status"):
        items = [item for item in items if item["status"] == status]
    return paginate(call, items)


@route("/v1/invoices/<id>", "GET", {})
def retrieve_invoice(call: Call, id: str) -> dict[str, Any]:
    return call.store.get("invoice", id)


@route("/v1/events", "GET", {**LIST, "type": SCALAR})
def list_events(call: Call) -> dict[str, Any]:
    return paginate(call, call.store.list_events(call.params.get("type")))


@route("/v1/events/<id>", "GET", {})
def retrieve_event(call: Call, id: str) -> dict[str, Any]:
    return call.store.get_event(id)
