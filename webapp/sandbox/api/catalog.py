"""Products and prices."""

from __future__ import annotations

import copy
from typing import Any

from webapp.sandbox import objects
from webapp.sandbox.api.routing import LIST, Call, merge_metadata, paginate, route
from webapp.sandbox.store import Store, diff
from webapp.sandbox.wire import MAP, SCALAR, as_bool, as_int, invalid

PRODUCT_FIELDS = {
    "name": SCALAR,
    "active": SCALAR,
    "description": SCALAR,
    "metadata": MAP,
    "images": [SCALAR],
    "url": SCALAR,
    "unit_label": SCALAR,
    "statement_descriptor": SCALAR,
    "tax_code": SCALAR,
    "shippable": SCALAR,
}


@route("/v1/products", "POST", {**PRODUCT_FIELDS, "id": SCALAR})
def create_product(call: Call) -> dict[str, Any]:
    params = call.params
    if not params.get("name"):
        raise invalid("Missing required param: name.", param="name", code="parameter_missing")
    if params.get("id") and call.store.find(params["id"]):
        raise invalid(
            f"Product already exists with ID '{params['id']}'.",
            param="id",
            code="resource_already_exists",
        )
    product = objects.product(call.store.now(), name=params["name"], id=params.get("id"))
    _apply_product_fields(product, params)
    call.store.save(product)
    call.store.emit("product.created", product)
    return product


def _apply_product_fields(product: dict[str, Any], params: dict[str, Any]) -> None:
    for key in ("name", "description", "url", "unit_label", "statement_descriptor", "tax_code"):
        if key in params:
            product[key] = params[key] or None
    if "active" in params:
        product["active"] = as_bool(params["active"], "active")
    if "images" in params:
        product["images"] = list(params["images"] or [])
    if "metadata" in params:
        product["metadata"] = merge_metadata(params["metadata"], product["metadata"])


@route("/v1/products", "GET", {**LIST, "active": SCALAR, "ids": [SCALAR]})
def list_products(call: Call) -> dict[str, Any]:
    items = call.store.query("product")
    if "active" in call.params:
        active = as_bool(call.params["active"], "active")
        items = [item for item in items if item["active"] == active]
    if "ids" in call.params:
        items = [item for item in items if item["id"] in call.params["ids"]]
    return paginate(call, items)


@route("/v1/products/<id>", "GET", {})
def retrieve_product(call: Call, id: str) -> dict[str, Any]:
    return call.store.get("product", id)


@route("/v1/products/<id>", "POST", {**PRODUCT_FIELDS, "default_price": SCALAR})
def update_product(call: Call, id: str) -> dict[str, Any]:
    product = call.store.get("product", id, for_update=True)
    before = copy.deepcopy(product)
    _apply_product_fields(product, call.params)
    if "default_price" in call.params:
        product["default_price"] = call.params["default_price"] or None
    product["updated"] = call.store.now()
    call.store.save(product)
    call.store.emit("product.updated", product, diff(before, product))
    return product


# --- prices ---------------------------------------------------------------------------------

RECURRING = {"interval": SCALAR, "interval_count": SCALAR, "usage_type": SCALAR}
PRICE_CREATE = {
    "currency": SCALAR,
    "product": SCALAR,
    "product_data": {"name": SCALAR, "metadata": MAP, "active": SCALAR},
    "unit_amount": SCALAR,
    "recurring": RECURRING,
    "lookup_key": SCALAR,
    "transfer_lookup_key": SCALAR,
    "nickname": SCALAR,
    "metadata": MAP,
    "active": SCALAR,
    "tax_behavior": SCALAR,
    "billing_scheme": SCALAR,
}


@route("/v1/prices", "POST", PRICE_CREATE)
def create_price(call: Call) -> dict[str, Any]:
    params, store = call.params, call.store
    for required in ("currency", "unit_amount"):
        if required not in params:
            raise invalid(
                f"Missing required param: {required}.", param=required, code="parameter_missing"
            )
    product_id = params.get("product")
    if product_id:
        store.get("product", product_id, param="product")
    elif "product_data" in params:
        product = objects.product(store.now(), name=params["product_data"].get("name") or "")
        product["metadata"] = merge_metadata(params["product_data"].get("metadata"))
        store.save(product)
        store.emit("product.created", product)
        product_id = product["id"]
    else:
        raise invalid("Missing required param: product.", param="product", code="parameter_missing")
    recurring = params.get("recurring")
    if recurring and recurring.get("interval") not in ("day", "week", "month", "year"):
        raise invalid("Invalid recurring[interval]", param="recurring[interval]")
    price = objects.price(
        store.now(),
        product_id=product_id,
        unit_amount=as_int(params["unit_amount"], "unit_amount"),
        currency=params["currency"].lower(),
        recurring=recurring,
        nickname=params.get("nickname"),
        metadata=merge_metadata(params.get("metadata")),
    )
    if "active" in params:
        price["active"] = as_bool(params["active"], "active")
    _set_lookup_key(store, price, params)
    store.save(price)
    store.emit("price.created", price)
    return price


def _set_lookup_key(store: Store, price: dict[str, Any], params: dict[str, Any]) -> None:
    """Give `price` its lookup key; with `transfer_lookup_key` take it from the price holding it."""
    if "lookup_key" not in params:
        return
    key = params["lookup_key"] or None
    holders = (
        [p for p in store.query("price", lookup_key=key) if p["id"] != price["id"]] if key else []
    )
    if holders and not as_bool(params.get("transfer_lookup_key", False), "transfer_lookup_key"):
        raise invalid(
            f"A price (`{holders[0]['id']}`) already uses that lookup key.",
            param="lookup_key",
            code="lookup_key_already_exists" if False else "parameter_invalid_string",
        )
    for holder in holders:
        before = copy.deepcopy(holder)
        holder["lookup_key"] = None
        store.save(holder)
        store.emit("price.updated", holder, diff(before, holder))
    price["lookup_key"] = key


@route(
    "/v1/prices",
    "GET",
    {
        **LIST,
        "active": SCALAR,
        "product": SCALAR,
        "lookup_keys": [SCALAR],
        "type": SCALAR,
        "currency": SCALAR,
    },
)
def list_prices(call: Call) -> dict[str, Any]:
    params = call.params
    items = call.store.query(
        "price", product=params.get("product"), lookup_key=params.get("lookup_keys")
    )
    if "active" in params:
        active = as_bool(params["active"], "active")
        items = [item for item in items if item["active"] == active]
    for key in ("type", "currency"):
        if key in params:
            items = [item for item in items if item[key] == params[key]]
    return paginate(call, items)


@route("/v1/prices/<id>", "GET", {})
def retrieve_price(call: Call, id: str) -> dict[str, Any]:
    return call.store.get("price", id)


@route(
    "/v1/prices/<id>",
    "POST",
    {
        "active": SCALAR,
        "lookup_key": SCALAR,
        "transfer_lookup_key": SCALAR,
        "metadata": MAP,
        "nickname": SCALAR,
        "tax_behavior": SCALAR,
    },
)
def update_price(call: Call, id: str) -> dict[str, Any]:
    price = call.store.get("price", id, for_update=True)
    before = copy.deepcopy(price)
    params = call.params
    if "active" in params:
        price["active"] = as_bool(params["active"], "active")
    if "metadata" in params:
        price["metadata"] = merge_metadata(params["metadata"], price["metadata"])
    if "nickname" in params:
        price["nickname"] = params["nickname"] or None
    _set_lookup_key(call.store, price, params)
    call.store.save(price)
    call.store.emit("price.updated", price, diff(before, price))
    return price
