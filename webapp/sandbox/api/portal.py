"""Customer-portal sessions."""

from __future__ import annotations

from typing import Any

from webapp.sandbox import objects
from webapp.sandbox.api.routing import Call, route
from webapp.sandbox.wire import SCALAR, invalid


@route(
    "/v1/billing_portal/sessions",
    "POST",
    {"customer": SCALAR, "return_url": SCALAR, "configuration": SCALAR, "locale": SCALAR},
)
def create_portal_session(call: Call) -> dict[str, Any]:
    if not call.params.get("customer"):
        raise invalid(
            "Missing required param: customer.", param="customer", code="parameter_missing"
        )
    call.store.get("customer", call.params["customer"], param="customer")
    session = objects.portal_session(
        call.store.now(),
        customer_id=call.params["customer"],
        return_url=call.params.get("return_url"),
        url_base=call.public_base,
    )
    session["locale"] = call.params.get("locale")
    call.store.save(session)
    return session
