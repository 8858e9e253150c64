"""The sandbox's HTTP API: Stripe's `/v1` endpoints as a plain WSGI app.

It is plain WSGI rather than Flask on purpose: called in-process from inside one of the site's
requests, `flask.request` still names the site's request (used for the hosted pages' public URL
and for deferring synchronous webhook delivery to the end of that request).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import has_request_context
from flask import request as site_request
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from webapp.sandbox import objects, operations
from webapp.sandbox.models import SandboxIdempotencyKey
from webapp.sandbox.store import Store, diff, new_id, public_view
from webapp.sandbox.wire import (
    MAP,
    SCALAR,
    StripeAPIError,
    as_bool,
    as_int,
    decode_params,
    dumps,
    invalid,
    validate,
)

if TYPE_CHECKING:
    from webapp.sandbox import Sandbox

log = logging.getLogger(__name__)

DEFAULT_PUBLIC_URL = "http://localhost:5000/"
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
    page = [public_view(item) for item in items[:limit]]
    return objects.list_object(page, call.path, has_more=len(items) > limit)


def _metadata(value: Any, current: dict[str, Any] | None = None) -> dict[str, Any]:
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


# --- products -------------------------------------------------------------------------------

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
        product["metadata"] = _metadata(params["metadata"], product["metadata"])


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
        product["metadata"] = _metadata(params["product_data"].get("metadata"))
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
        metadata=_metadata(params.get("metadata")),
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
        price["metadata"] = _metadata(params["metadata"], price["metadata"])
    if "nickname" in params:
        price["nickname"] = params["nickname"] or None
    _set_lookup_key(call.store, price, params)
    call.store.save(price)
    call.store.emit("price.updated", price, diff(before, price))
    return price


# --- customers ------------------------------------------------------------------------------

CUSTOMER_FIELDS = {
    "email": SCALAR,
    "name": SCALAR,
    "description": SCALAR,
    "phone": SCALAR,
    "metadata": MAP,
    "preferred_locales": [SCALAR],
}


@route("/v1/customers", "POST", CUSTOMER_FIELDS)
def create_customer(call: Call) -> dict[str, Any]:
    customer = objects.customer(call.store.now(), email=call.params.get("email"))
    _apply_customer_fields(customer, call.params)
    call.store.save(customer)
    call.store.emit("customer.created", customer)
    return customer


def _apply_customer_fields(customer: dict[str, Any], params: dict[str, Any]) -> None:
    for key in ("email", "name", "description", "phone"):
        if key in params:
            customer[key] = params[key] or None
    if "preferred_locales" in params:
        customer["preferred_locales"] = list(params["preferred_locales"] or [])
    if "metadata" in params:
        customer["metadata"] = _metadata(params["metadata"], customer["metadata"])


@route("/v1/customers", "GET", {**LIST, "email": SCALAR})
def list_customers(call: Call) -> dict[str, Any]:
    return paginate(call, call.store.query("customer", email=call.params.get("email")))


@route("/v1/customers/<id>", "GET", {})
def retrieve_customer(call: Call, id: str) -> dict[str, Any]:
    return call.store.get("customer", id)


@route("/v1/customers/<id>", "POST", CUSTOMER_FIELDS)
def update_customer(call: Call, id: str) -> dict[str, Any]:
    customer = call.store.get("customer", id, for_update=True)
    before = copy.deepcopy(customer)
    _apply_customer_fields(customer, call.params)
    call.store.save(customer)
    call.store.emit("customer.updated", customer, diff(before, customer))
    return customer


# --- checkout sessions ----------------------------------------------------------------------

SESSION_CREATE = {
    "mode": SCALAR,
    "customer": SCALAR,
    "customer_email": SCALAR,
    "line_items": [{"price": SCALAR, "quantity": SCALAR}],
    "client_reference_id": SCALAR,
    "metadata": MAP,
    "subscription_data": {"metadata": MAP, "description": SCALAR},
    "allow_promotion_codes": SCALAR,
    "success_url": SCALAR,
    "cancel_url": SCALAR,
    "expires_at": SCALAR,
    "payment_method_types": [SCALAR],
    "billing_address_collection": SCALAR,
    "locale": SCALAR,
    "ui_mode": SCALAR,
}


@route("/v1/checkout/sessions", "POST", SESSION_CREATE)
def create_checkout_session(call: Call) -> dict[str, Any]:
    params, store = call.params, call.store
    if params.get("mode") != "subscription":
        raise invalid(
            "The sandbox supports only `mode=subscription` Checkout Sessions.", param="mode"
        )
    if params.get("customer") and params.get("customer_email"):
        raise invalid(
            "You may only specify one of these parameters: customer, customer_email.",
            param="customer_email",
        )
    if params.get("customer"):
        store.get("customer", params["customer"], param="customer")
    line_items = params.get("line_items") or []
    if len(line_items) != 1:
        raise invalid("Provide exactly one line item with a recurring price.", param="line_items")
    price = store.get("price", line_items[0].get("price"), param="line_items[0][price]")
    if not price["active"] or price["type"] != "recurring":
        raise invalid(
            f"The price `{price['id']}` is not an active recurring price.",
            param="line_items[0][price]",
        )
    quantity = as_int(line_items[0].get("quantity", 1), "line_items[0][quantity]")
    if not params.get("success_url"):
        raise invalid("Missing required param: success_url.", param="success_url")
    now = store.now()
    expires_at = as_int(params.get("expires_at", now + 24 * 3600), "expires_at")
    if not now + 1800 <= expires_at <= now + 24 * 3600:
        raise invalid(
            "The `expires_at` timestamp must be between 30 minutes and 24 hours from now.",
            param="expires_at",
        )
    session_id = new_id("cs_test_", 58)
    session = objects.checkout_session(
        now,
        session_id=session_id,
        url=f"{call.public_base}sandbox/checkout/{session_id}",
        allow_promotion_codes=(
            as_bool(params["allow_promotion_codes"], "allow_promotion_codes")
            if "allow_promotion_codes" in params
            else None
        ),
        amount_subtotal=price["unit_amount"] * quantity,
        amount_total=price["unit_amount"] * quantity,
        cancel_url=params.get("cancel_url"),
        client_reference_id=params.get("client_reference_id"),
        currency=price["currency"],
        customer=params.get("customer"),
        customer_email=params.get("customer_email"),
        expires_at=expires_at,
        locale=params.get("locale"),
        metadata=_metadata(params.get("metadata")),
        success_url=params["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id),
        _line_items=[{"price": price["id"], "quantity": quantity}],
        _subscription_metadata=_metadata((params.get("subscription_data") or {}).get("metadata")),
    )
    store.save(session)
    return session


@route(
    "/v1/checkout/sessions",
    "GET",
    {**LIST, "customer": SCALAR, "subscription": SCALAR, "status": SCALAR},
)
def list_checkout_sessions(call: Call) -> dict[str, Any]:
    operations.expire_overdue_sessions(call.store)
    items = call.store.query("checkout.session", customer=call.params.get("customer"))
    for key in ("subscription", "status"):
        if key in call.params:
            items = [item for item in items if item[key] == call.params[key]]
    return paginate(call, items)


@route("/v1/checkout/sessions/<id>", "GET", {})
def retrieve_checkout_session(call: Call, id: str) -> dict[str, Any]:
    operations.expire_overdue_sessions(call.store)
    return call.store.get("checkout.session", id, param="session")


@route("/v1/checkout/sessions/<id>/expire", "POST", {})
def expire_checkout_session(call: Call, id: str) -> dict[str, Any]:
    call.store.get("checkout.session", id, param="session")
    return operations.expire_checkout_session(call.store, id)


@route("/v1/checkout/sessions/<id>/line_items", "GET", LIST)
def list_session_line_items(call: Call, id: str) -> dict[str, Any]:
    session = call.store.get("checkout.session", id, param="session")
    return paginate(call, session_line_items(call.store, session)["data"])


def session_line_items(store: Store, session: dict[str, Any]) -> dict[str, Any]:
    """A session's line items as Stripe's `item` objects (only shown when asked for)."""
    items = []
    for index, line in enumerate(session["_line_items"]):
        price = store.get("price", line["price"])
        amount = price["unit_amount"] * line["quantity"]
        product = store.find(price["product"]) or {}
        items.append(
            {
                "id": f"li_{session['id'][8:30]}{index}",
                "object": "item",
                "adjustable_quantity": None,
                "amount_discount": 0,
                "amount_subtotal": amount,
                "amount_tax": 0,
                "amount_total": amount,
                "currency": price["currency"],
                "description": product.get("name"),
                "metadata": {},
                "price": price,
                "quantity": line["quantity"],
            }
        )
    return objects.list_object(items, f"/v1/checkout/sessions/{session['id']}/line_items")


# --- billing portal -------------------------------------------------------------------------


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


# --- subscriptions --------------------------------------------------------------------------


@route("/v1/subscriptions", "GET", {**LIST, "customer": SCALAR, "status": SCALAR, "price": SCALAR})
def list_subscriptions(call: Call) -> dict[str, Any]:
    items = call.store.query("subscription", customer=call.params.get("customer"))
    status = call.params.get("status")
    if status and status != "all":
        items = [item for item in items if item["status"] == status]
    elif not status:  # Stripe leaves canceled subscriptions out unless asked
        items = [item for item in items if item["status"] != "canceled"]
    if price := call.params.get("price"):
        items = [item for item in items if item["items"]["data"][0]["price"]["id"] == price]
    return paginate(call, items)


@route("/v1/subscriptions/<id>", "GET", {})
def retrieve_subscription(call: Call, id: str) -> dict[str, Any]:
    return call.store.get("subscription", id)


@route(
    "/v1/subscriptions/<id>",
    "POST",
    {
        "items": [{"id": SCALAR, "price": SCALAR, "quantity": SCALAR, "deleted": SCALAR}],
        "proration_behavior": SCALAR,
        "cancel_at_period_end": SCALAR,
        "metadata": MAP,
        "default_payment_method": SCALAR,
        "payment_behavior": SCALAR,
        "description": SCALAR,
        "cancellation_details": {"comment": SCALAR, "feedback": SCALAR},
    },
)
def update_subscription(call: Call, id: str) -> dict[str, Any]:
    params, store = call.params, call.store
    sub = store.get("subscription", id, for_update=True)
    before = copy.deepcopy(sub)
    if sub["status"] == "canceled" and set(params) - {"metadata", "cancellation_details", "expand"}:
        raise invalid(
            "A canceled subscription can only update its cancellation_details and metadata."
        )
    behavior = params.get("proration_behavior", "create_prorations")
    if behavior not in ("create_prorations", "always_invoice", "none"):
        raise invalid(f"Invalid proration_behavior: {behavior}", param="proration_behavior")
    for index, item in enumerate(params.get("items") or []):
        current = sub["items"]["data"][0]
        if item.get("id") and item["id"] != current["id"]:
            raise StripeAPIError(
                404,
                f"No such subscription item: '{item['id']}'",
                code="resource_missing",
                param=f"items[{index}][id]",
            )
        if item.get("price"):
            price = store.get("price", item["price"], param=f"items[{index}][price]")
            if not price["active"]:
                raise invalid(
                    f"The price specified is inactive: {price['id']}",
                    param=f"items[{index}][price]",
                )
            sub = operations.change_price(
                store,
                sub,
                price,
                behavior,
                payment_behavior=params.get("payment_behavior", "allow_incomplete"),
            )
    if "cancel_at_period_end" in params:
        cancel = as_bool(params["cancel_at_period_end"], "cancel_at_period_end")
        sub = operations.set_cancel_at_period_end(store, sub, cancel)
    if "metadata" in params:
        sub["metadata"] = _metadata(params["metadata"], sub["metadata"])
    if "description" in params:
        sub["description"] = params["description"] or None
    if "default_payment_method" in params:
        store.get(
            "payment_method", params["default_payment_method"], param="default_payment_method"
        )
        sub["default_payment_method"] = params["default_payment_method"]
    if "cancellation_details" in params:
        sub["cancellation_details"].update(params["cancellation_details"])
    store.save(sub)
    changes = diff(before, sub)
    if changes:
        store.emit("customer.subscription.updated", sub, changes)
    return sub


@route(
    "/v1/subscriptions/<id>",
    "DELETE",
    {
        "invoice_now": SCALAR,
        "prorate": SCALAR,
        "cancellation_details": {"comment": SCALAR, "feedback": SCALAR},
    },
)
def cancel_subscription(call: Call, id: str) -> dict[str, Any]:
    return operations.cancel_now(call.store, id)


# --- invoices and events --------------------------------------------------------------------


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


# --- expand ---------------------------------------------------------------------------------


def expand(store: Store, obj: dict[str, Any], path: list[str], full: str) -> None:
    """Replace an id at `path` with its object, as `expand[]=a.b` asks."""
    head, rest = path[0], path[1:]
    if obj.get("object") == "list" and head == "data":
        for item in obj["data"]:
            if rest:
                expand(store, item, rest, full)
        return
    if obj.get("object") == "checkout.session" and head == "line_items":
        obj["line_items"] = session_line_items(store, obj)
    elif head not in obj:
        raise invalid(f"This property cannot be expanded ({head}).", param="expand")
    elif isinstance(obj[head], str):
        found = store.find(obj[head])
        if found is None:
            raise invalid(f"This property cannot be expanded ({head}).", param="expand")
        obj[head] = found
    elif obj[head] is not None and not isinstance(obj[head], dict):
        raise invalid(f"This property cannot be expanded ({head}).", param="expand")
    if rest and isinstance(obj[head], dict):
        expand(store, obj[head], rest, full)


# --- the WSGI app ---------------------------------------------------------------------------


class SandboxAPI:
    """Stripe's HTTP API over the sandbox store."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.url_map = Map(
            [
                Rule(rule, methods=[method], endpoint=index)
                for index, (rule, method, _schema, _handler) in enumerate(ROUTES)
            ]
        )

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]):
        request = Request(environ)
        request_id = new_id("req_", 14)
        try:
            status, body, replayed = self.handle(request, request_id)
        except StripeAPIError as exc:
            status, body, replayed = exc.status, json.dumps(exc.envelope()), False
        response = Response(body, status=status, content_type="application/json")
        response.headers["Request-Id"] = request_id
        response.headers["Stripe-Version"] = request.headers.get(
            "Stripe-Version", self.sandbox.api_version
        )
        if replayed:
            response.headers["Idempotent-Replayed"] = "true"
        if status >= 400:
            log.info("sandbox %s %s -> %s", request.method, request.path, status)
        return response(environ, start_response)

    def handle(self, request: Request, request_id: str) -> tuple[int, str, bool]:
        self._authenticate(request)
        self.sandbox.faults.before_api_call()
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            index, ids = adapter.match()
        except NotFound:
            raise StripeAPIError(
                404, f"Unrecognized request URL ({request.method}: {request.path}).", code=None
            ) from None
        except MethodNotAllowed:
            raise StripeAPIError(
                404, f"Unrecognized request URL ({request.method}: {request.path}).", code=None
            ) from None
        _rule, _method, schema, handler = ROUTES[index]
        pairs = list(request.args.items(multi=True))
        if request.method in ("POST", "DELETE"):
            pairs += list(request.form.items(multi=True))
        params = decode_params(pairs)
        validate(params, schema)
        idempotency_key = (
            request.headers.get("Idempotency-Key") if request.method == "POST" else None
        )
        with self.sandbox.store() as store:
            store.request_info = {"id": request_id, "idempotency_key": idempotency_key}
            claim = None
            if idempotency_key:
                stored = self._replay(store, request, idempotency_key, params)
                if stored is not None:
                    return stored[0], stored[1], True
                claim = self._claim(store, request, idempotency_key, params)
            call = Call(store, params, self._public_base(request), request.path)
            result = handler(call, **ids)
            for path in params.get("expand") or []:
                expand(store, result, path.split("."), path)
            body = dumps(public_view(result))
            if claim is not None:
                claim.status, claim.body = 200, body
        return 200, body, False

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("Authorization", "")
        key = header[7:] if header.startswith("Bearer ") else ""
        if not key and request.authorization and request.authorization.type == "basic":
            key = request.authorization.username or ""
        if not key.startswith(("sk_test_", "rk_test_")):
            raise StripeAPIError(
                401,
                "Invalid API Key provided: the sandbox accepts test keys (sk_test_…) only."
                if key
                else "You did not provide an API key.",
                type="invalid_request_error",
            )

    def _public_base(self, request: Request) -> str:
        # In-process, the page the browser will visit lives on the site that made the call.
        if has_request_context():
            return site_request.host_url
        if self.sandbox.public_url:
            return self.sandbox.public_url
        # Called in-process outside any request (CLI, tests): assume the development server.
        return DEFAULT_PUBLIC_URL if request.host.endswith(".invalid") else request.host_url

    @staticmethod
    def _fingerprint(request: Request, params: dict[str, Any]) -> str:
        raw = json.dumps([request.method, request.path, params], sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()

    def _replay(self, store: Store, request: Request, key: str, params: dict[str, Any]):
        row = store.session.get(SandboxIdempotencyKey, self._key(request, key))
        if row is None:
            return None
        if row.request_fingerprint != self._fingerprint(request, params):
            raise StripeAPIError(
                400,
                "Keys for idempotent requests can only be used with the same parameters they were "
                f"first used with. Try using a key other than '{key}' if you meant to execute a "
                "different request.",
                type="idempotency_error",
            )
        return row.status, row.body

    def _claim(self, store, request, key, params) -> SandboxIdempotencyKey:
        """Take the key before doing the work, as Stripe does.

        A concurrent request with the same key waits on the key's row until this one commits,
        then gets a 409 (which the SDK retries, and the retry replays the stored response)
        instead of repeating the work.
        """
        row = SandboxIdempotencyKey(
            key=self._key(request, key),
            request_fingerprint=self._fingerprint(request, params),
            status=0,
            body="",
            created=int(time.time()),
        )
        store.session.add(row)
        try:
            store.session.flush()
        except IntegrityError:
            raise StripeAPIError(
                409,
                "There is currently another in-progress request using this Idempotent Key.",
                type="idempotency_error",
            ) from None
        return row

    @staticmethod
    def _key(request: Request, key: str) -> str:
        # Keys are per API key, as Stripe scopes them per account.
        api_key = request.headers.get("Authorization", "")[-12:]
        return f"{api_key}:{key}"[:400]
