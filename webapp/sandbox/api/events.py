"""Events."""

from __future__ import annotations

from typing import Any

from webapp.sandbox.api.routing import LIST, Call, paginate, route
from webapp.sandbox.wire import SCALAR


@route("/v1/events", "GET", {**LIST, "type": SCALAR})
def list_events(call: Call) -> dict[str, Any]:
    return paginate(call, call.store.list_events(call.params.get("type")))


@route("/v1/events/<id>", "GET", {})
def retrieve_event(call: Call, id: str) -> dict[str, Any]:
    return call.store.get_event(id)
