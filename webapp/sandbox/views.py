"""How stored objects are shown: what the API returns and what events carry.

The store keeps each object as the sandbox needs it; some fields are shown as they are *now*
rather than as stored (Stripe renders them at read time), so every response and every event goes
through `render`.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from webapp.sandbox.store import Store


def render(store: Store, obj: Any) -> Any:
    """A deep copy of `obj` (or of each object in a list) as the API shows it now."""
    obj = copy.deepcopy(obj)
    if isinstance(obj, dict):
        if obj.get("object") == "list":
            obj["data"] = [_render_one(store, item) for item in obj["data"]]
        else:
            obj = _render_one(store, obj)
    return obj


def _render_one(store: Store, obj: Any) -> Any:
    if not isinstance(obj, dict):
        return obj
    renderer = RENDERERS.get(str(obj.get("object")))
    return renderer(store, obj) if renderer else obj


def _live_price(store: Store, price: Any) -> Any:
    if isinstance(price, str):
        return store.find(price) or price
    return price


def render_items(store: Store, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Subscription items show their Price as it is now, and the legacy `plan` view of it.

    Stripe does not say whether the embedded price is a snapshot; it calls it "the price the
    customer is subscribed to" and labels its real snapshots elsewhere, so it is the Price
    itself: `active: false` once archived, `lookup_key: null` once `transfer_lookup_key`
    moved the key, its current metadata (research: subscriptions_sdk.md §2).
    """
    from webapp.sandbox.objects import plan_from_price

    for item in items:
        price = _live_price(store, item.get("price"))
        if isinstance(price, dict):
            item["price"] = price
            item["plan"] = plan_from_price(price)
    return items


def _subscription(store: Store, sub: dict[str, Any]) -> dict[str, Any]:
    render_items(store, sub["items"]["data"])
    pending = sub.get("pending_update")
    if pending and pending.get("subscription_items"):
        render_items(store, pending["subscription_items"])
    return sub


# An invoice shows its first lines; the rest are a page away (`GET /v1/invoices/{id}/lines`).
INVOICE_LINES_SHOWN = 10


def render_line(store: Store, line: dict[str, Any]) -> dict[str, Any]:
    """A subscription line's `metadata` "reflects the current metadata from the subscription"
    (SDK `_invoice_line_item.py`, metadata). Proration lines are invoice items: they keep the
    invoice item's own metadata (empty)."""
    details = (line.get("parent") or {}).get("subscription_item_details")
    if details and not details["proration"]:
        sub = store.find(details["subscription"])
        if sub is not None:
            line["metadata"] = dict(sub["metadata"])
    return line


def _invoice(store: Store, invoice: dict[str, Any]) -> dict[str, Any]:
    lines = invoice["lines"]
    everything = [render_line(store, line) for line in lines["data"]]
    lines["data"] = everything[:INVOICE_LINES_SHOWN]
    lines["has_more"] = len(everything) > INVOICE_LINES_SHOWN
    return invoice


RENDERERS: dict[str, Any] = {"subscription": _subscription, "invoice": _invoice}


def render_previous(store: Store, obj: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """`previous_attributes` shown like the object: a subscription's old items with prices."""
    previous = copy.deepcopy(previous)
    if obj.get("object") == "subscription" and isinstance(previous.get("items"), dict):
        render_items(store, previous["items"].get("data") or [])
    return previous
