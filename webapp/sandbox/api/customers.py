"""Customers."""

from __future__ import annotations

import copy
from typing import Any

from webapp.sandbox import objects, operations
from webapp.sandbox.api.routing import LIST, Call, merge_metadata, paginate, route
from webapp.sandbox.store import diff
from webapp.sandbox.wire import MAP, SCALAR

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
        customer["metadata"] = merge_metadata(params["metadata"], customer["metadata"])


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


@route("/v1/customers/<id>/balance_transactions", "GET", {**LIST, "invoice": SCALAR})
def list_balance_transactions(call: Call, id: str) -> dict[str, Any]:
    """The customer's balance ledger. Assumption: only credit notes (`credit_amount`) write to
    it so far; the balance an invoice applies or a prorated cancellation credits moves
    `customer.balance` without a transaction here."""
    call.store.get("customer", id)
    items = call.store.query("customer_balance_transaction", customer=id)
    if invoice := call.params.get("invoice"):
        items = [item for item in items if item["invoice"] == invoice]
    return paginate(call, items)


@route("/v1/customers/<id>", "DELETE", {})
def delete_customer(call: Call, id: str) -> dict[str, Any]:
    """Stripe ends the customer's subscriptions at once, says `customer.deleted`, and from then
    on retrieves the customer as the stub `{"id", "object": "customer", "deleted": true}`
    (Stripe's own example: fixtures3.json `deleted_customer`)."""
    store = call.store
    customer = store.get("customer", id, for_update=True)
    if customer.get("deleted"):
        return customer
    for sub in store.query("subscription", customer=id):
        if sub["status"] not in ("canceled", "incomplete_expired"):
            operations.cancel_now(store, store.get("subscription", sub["id"], for_update=True))
    store.emit("customer.deleted", customer)
    return store.save({"id": id, "object": "customer", "deleted": True})
