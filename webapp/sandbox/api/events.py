"""Events: `GET /v1/events` with Stripe's filters, and `GET /v1/events/<id>`.

The list's parameters follow Stripe's API reference ("List all events",
https://docs.stripe.com/api/events/list, and the SDK's `EventListParams`): `created` (a Unix time
or a range of `gt`/`gte`/`lt`/`lte`), `delivery_success` ("If false, events which are still pending
or have failed all delivery attempts to a webhook endpoint will be returned"), `type` (one name,
or a group with `*` as a wildcard), `types` (up to 20 names; "You may pass either `type` or
`types`, but not both"), and cursor paging (`limit`, `starting_after`, `ending_before`), newest
first. https://docs.stripe.com/webhooks/process-undelivered-events lists undelivered events with
exactly these.
"""

from __future__ import annotations

import re
from typing import Any

from webapp.sandbox.api.routing import LIST, Call, paginate, route
from webapp.sandbox.store import EventFilter
from webapp.sandbox.wire import SCALAR, as_bool, as_int, invalid

RANGE_KEYS = ("gt", "gte", "lt", "lte")
MAX_TYPES = 20
# Anything: `created` is a number or a range object, checked here (the wire's schemas have no
# "scalar or object" rule).
NUMBER_OR_RANGE = "number-or-range"


@route(
    "/v1/events",
    "GET",
    {
        **LIST,
        "type": SCALAR,
        "types": [SCALAR],
        "created": NUMBER_OR_RANGE,
        "delivery_success": SCALAR,
    },
)
def list_events(call: Call) -> dict[str, Any]:
    params = call.params
    if "type" in params and "types" in params:
        raise invalid("You may pass either `type` or `types`, but not both.", param="types")
    wanted = EventFilter(
        types=_types(params.get("types")),
        pattern=_type_pattern(params["type"]) if params.get("type") else None,
        created=_created(params["created"]) if "created" in params else {},
        delivery_success=(
            as_bool(params["delivery_success"], "delivery_success")
            if "delivery_success" in params
            else None
        ),
    )
    return paginate(call, call.store.list_events(wanted))


@route("/v1/events/<id>", "GET", {})
def retrieve_event(call: Call, id: str) -> dict[str, Any]:
    return call.store.get_event(id)


def _types(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if value == "" or not isinstance(value, list):
        raise invalid("Invalid array for types.", param="types", code="parameter_invalid")
    if len(value) > MAX_TYPES:
        raise invalid(
            f"Invalid array for types: must contain at most {MAX_TYPES} items.", param="types"
        )
    return tuple(str(item) for item in value)


def _type_pattern(value: str) -> re.Pattern[str]:
    """`charge.dispute.*`: `*` stands for any run of characters."""
    return re.compile(".*".join(re.escape(part) for part in value.split("*")) + r"\Z")


def _created(value: Any) -> dict[str, int]:
    """`created=123` (exactly then) or `created[gte]=…&created[lt]=…`."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(RANGE_KEYS))
        if unknown:
            raise invalid(
                f"Received unknown parameter: created[{unknown[0]}]",
                param=f"created[{unknown[0]}]",
                code="parameter_unknown",
            )
        return {key: as_int(bound, f"created[{key}]") for key, bound in value.items()}
    if isinstance(value, list):
        raise invalid("Invalid integer: created", param="created", code="parameter_invalid_integer")
    moment = as_int(value, "created")
    return {"gte": moment, "lte": moment}
