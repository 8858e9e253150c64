"""Customers."""

from __future__ import annotations

import copy
from typing import Any

from webapp.sandbox import objects, operations
from webapp.sandbox.api.routing import LIST, Call, includable, merge_metadata, paginate, route
from webapp.sandbox.operations.tax import tax_id_object
from webapp.sandbox.store import Store, diff
from webapp.sandbox.wire import MAP, SCALAR, Emptyable, invalid

ADDRESS = Emptyable(
    {key: SCALAR for key in ("city", "country", "line1", "line2", "postal_code", "state")}
)

CUSTOMER_FIELDS = {
    "email": SCALAR,
    "name": SCALAR,
    "description": SCALAR,
    "phone": SCALAR,
    "metadata": MAP,
    "preferred_locales": [SCALAR],
    "address": ADDRESS,
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
    if "address" in params:
        customer["address"] = _address(params["address"], customer.get("address"))


def _address(value: object, current: dict[str, Any] | None) -> dict[str, Any] | None:
    """`address=` clears it; otherwise the fields given replace those fields. Stripe checks a
    country code is two letters (assumption: its wording)."""
    if value == "" or not isinstance(value, dict):
        return None
    address = {**objects.EMPTY_ADDRESS, **(current or {})}
    for key, item in value.items():
        address[key] = str(item).strip() or None
    country = address.get("country")
    if country is not None and not (len(country) == 2 and country.isalpha()):
        raise invalid(
            "Country '" + country + "' is unknown. Try using a 2-character alphanumeric "
            "country code instead, such as 'US', 'EG', or 'GB'.",
            param="address[country]",
        )
    if country:
        address["country"] = country.upper()
    return address


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


# --- tax ids (docs.stripe.com/api/tax_ids; shapes: fixtures3.json `tax_id`, `deleted_tax_id`) --


@route("/v1/customers/<id>/tax_ids", "POST", {"type": SCALAR, "value": SCALAR})
def create_tax_id(call: Call, id: str) -> dict[str, Any]:
    customer = call.store.get("customer", id, param="customer")
    for name in ("type", "value"):
        if not call.params.get(name):
            raise invalid(f"Missing required param: {name}.", param=name, code="parameter_missing")
    tax_id = tax_id_object(
        call.store.now(),
        customer_id=customer["id"],
        tax_type=call.params["type"],
        value=call.params["value"],
    )
    call.store.save(tax_id)
    call.store.emit("customer.tax_id.created", tax_id)
    return tax_id


@route("/v1/customers/<id>/tax_ids", "GET", LIST)
def list_tax_ids(call: Call, id: str) -> dict[str, Any]:
    call.store.get("customer", id, param="customer")
    return paginate(call, call.store.query("tax_id", customer=id))


@route("/v1/customers/<id>/tax_ids/<tax_id>", "GET", {})
def retrieve_tax_id(call: Call, id: str, tax_id: str) -> dict[str, Any]:
    return _customer_tax_id(call, id, tax_id)


@route("/v1/customers/<id>/tax_ids/<tax_id>", "DELETE", {})
def delete_tax_id(call: Call, id: str, tax_id: str) -> dict[str, Any]:
    """Stripe removes it and says `customer.tax_id.deleted`; it then retrieves as missing."""
    found = _customer_tax_id(call, id, tax_id)
    call.store.emit("customer.tax_id.deleted", found)
    # Kept under another object type, so lists and retrieves no longer find it.
    call.store.save({"id": found["id"], "object": "deleted_tax_id", "deleted": True})
    return {"id": found["id"], "object": "tax_id", "deleted": True}


def _customer_tax_id(call: Call, customer_id: str, tax_id: str) -> dict[str, Any]:
    call.store.get("customer", customer_id, param="customer")
    found = call.store.get("tax_id", tax_id)
    if found["customer"] != customer_id:
        call.store.get("tax_id", "")  # Stripe's resource_missing for another customer's id
    return found


@includable("customer", "tax_ids")
def customer_tax_ids(store: Store, customer: dict[str, Any]) -> dict[str, Any]:
    """`expand[]=tax_ids`: the customer's tax ids (left out unless asked for)."""
    items = store.query("tax_id", customer=customer["id"])
    return objects.list_object(items, f"/v1/customers/{customer['id']}/tax_ids")


@route("/v1/tax_rates/<id>", "GET", {})
def retrieve_tax_rate(call: Call, id: str) -> dict[str, Any]:
    """The Tax Rates Stripe Tax reports invoices' tax under (operations.tax)."""
    return call.store.get("tax_rate", id)
