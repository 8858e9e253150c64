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


RENDERERS: dict[str, Any] = {}
