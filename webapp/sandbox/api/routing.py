"""What every endpoint module shares: the route table, the request a handler sees, lists,
metadata updates and `expand[]`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from webapp.sandbox import objects
from webapp.sandbox.store import Store
from webapp.sandbox.wire import SCALAR, as_int, invalid

LIST = {"limit": SCALAR, "starting_after": SCALAR, "ending_before": SCALAR}
EXPAND = {"expand": [SCALAR]}


@dataclass
class Call:
    """One API request as the handlers see it."""

    store: Store
    params: dict[str, Any]
    public_base: str
    path: str


Handler = Callable[..., dict[str, Any]]
ROUTES: list[tuple[str, str, dict[str, Any], Handler]] = []


def route(rule: str, method: str, schema: dict[str, Any]) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ROUTES.append((rule, method, {**schema, **EXPAND}, handler))
        return handler

    return register


# --- lists ----------------------------------------------------------------------------------


def paginate(call: Call, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stripe's cursor pagination over a newest-first list."""
    limit = as_int(call.params.get("limit", 10), "limit")
    if not 1 <= limit <= 100:
        raise invalid("Invalid limit: must be between 1 and 100", param="limit")
    ids = [item["id"] for item in items]
    if after := call.params.get("starting_after"):
        items = items[ids.index(after) + 1 :] if after in ids else []
    elif before := call.params.get("ending_before"):
        items = items[: ids.index(before)][-limit:] if before in ids else []
    page = items[:limit]  # rendered (and private notes dropped) with the response
    return objects.list_object(page, call.path, has_more=len(items) > limit)


def merge_metadata(value: Any, current: dict[str, Any] | None = None) -> dict[str, Any]:
    """Stripe's metadata update: merge keys; an empty string unsets a key or the whole map."""
    if value == "":
        return {}
    merged = dict(current or {})
    for key, item in (value or {}).items():
        if item == "":
            merged.pop(key, None)
        else:
            merged[key] = str(item)
    return merged


# --- expand ---------------------------------------------------------------------------------


# Fields Stripe leaves out unless asked for (`expand[]=line_items`, `expand[]=payments`…), by
# object type: each builds the field's value for one object.
INCLUDABLE: dict[tuple[str, str], Callable[[Store, dict[str, Any]], Any]] = {}


def includable(object_type: str, field: str):
    def register(build: Callable[[Store, dict[str, Any]], Any]):
        INCLUDABLE[(object_type, field)] = build
        return build

    return register


def expand(store: Store, obj: dict[str, Any], path: list[str], full: str) -> None:
    """Replace an id at `path` with its object, as `expand[]=a.b` asks."""
    head, rest = path[0], path[1:]
    if obj.get("object") == "list" and head == "data":
        for item in obj["data"]:
            if rest:
                expand(store, item, rest, full)
        return
    include = INCLUDABLE.get((str(obj.get("object")), head))
    if include is not None:
        if not isinstance(obj.get(head), dict):
            obj[head] = include(store, obj)
    elif head not in obj:
        raise invalid(f"This property cannot be expanded ({head}).", param="expand")
    elif isinstance(obj[head], list) and all(isinstance(item, str) for item in obj[head]):
        # A list of ids (`discounts`): each becomes its object.
        found_all = [store.find(item) for item in obj[head]]
        if any(found is None for found in found_all):
            raise invalid(f"This property cannot be expanded ({head}).", param="expand")
        obj[head] = [store.render(found) for found in found_all]
        for item in obj[head] if rest else []:
            expand(store, item, rest, full)
        return
    elif isinstance(obj[head], str):
        found = store.find(obj[head])
        if found is None:
            raise invalid(f"This property cannot be expanded ({head}).", param="expand")
        obj[head] = store.render(found)
    elif obj[head] is not None and not isinstance(obj[head], dict):
        raise invalid(f"This property cannot be expanded ({head}).", param="expand")
    if rest and isinstance(obj[head], dict):
        expand(store, obj[head], rest, full)
