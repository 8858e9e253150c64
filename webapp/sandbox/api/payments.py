"""PaymentIntents, Charges, InvoicePayments, Refunds and Disputes."""

from __future__ import annotations

import copy
from typing import Any

from webapp.sandbox import objects
from webapp.sandbox.api.routing import LIST, Call, includable, merge_metadata, paginate, route
from webapp.sandbox.objects.payments import EVIDENCE_FIELDS
from webapp.sandbox.operations import payments
from webapp.sandbox.store import Store, diff
from webapp.sandbox.wire import MAP, SCALAR, as_bool, as_int, invalid


def _where(items: list[dict[str, Any]], **filters: Any) -> list[dict[str, Any]]:
    """Objects whose fields equal every filter given (None: not filtered)."""
    return [
        item
        for item in items
        if all(value is None or item.get(key) == value for key, value in filters.items())
    ]


# --- payment intents --------------------------------------------------------------------------


@route("/v1/payment_intents", "GET", {**LIST, "customer": SCALAR})
def list_payment_intents(call: Call) -> dict[str, Any]:
    return paginate(call, call.store.query("payment_intent", customer=call.params.get("customer")))


@route("/v1/payment_intents/<id>", "GET", {"client_secret": SCALAR})
def retrieve_payment_intent(call: Call, id: str) -> dict[str, Any]:
    return call.store.get("payment_intent", id, param="intent")


# --- charges ------------------------------------------------------------------------------------


@route("/v1/charges", "GET", {**LIST, "customer": SCALAR, "payment_intent": SCALAR})
def list_charges(call: Call) -> dict[str, Any]:
    items = call.store.query("charge", customer=call.params.get("customer"))
    return paginate(call, _where(items, payment_intent=call.params.get("payment_intent")))


@route("/v1/charges/<id>", "GET", {})
def retrieve_charge(call: Call, id: str) -> dict[str, Any]:
    return call.store.get("charge", id, param="charge")


@includable("charge", "refunds")
def charge_refunds(store: Store, charge: dict[str, Any]) -> dict[str, Any]:
    """`expand[]=refunds`: not auto-expanded since 2022-11-15 (docs.stripe.com/changelog/
    2022-11-15/deprecates-charges-auto-expand)."""
    found = _where(store.query("refund"), charge=charge["id"])
    return objects.list_object(found, f"/v1/charges/{charge['id']}/refunds")


# --- invoice payments ---------------------------------------------------------------------------


@route(
    "/v1/invoice_payments",
    "GET",
    {
        **LIST,
        "invoice": SCALAR,
        "status": SCALAR,
        "payment": {"type": SCALAR, "payment_intent": SCALAR, "payment_record": SCALAR},
    },
)
def list_invoice_payments(call: Call) -> dict[str, Any]:
    params = call.params
    items = _where(
        call.store.query("invoice_payment"),
        invoice=params.get("invoice"),
        status=params.get("status"),
    )
    if "payment" in params:
        payment = params["payment"]
        if "type" not in payment:
            raise invalid(
                "Missing required param: payment[type].",
                param="payment[type]",
                code="parameter_missing",
            )
        if payment["type"] not in ("payment_intent", "payment_record"):
            raise invalid(
                "Invalid payment[type]: must be one of payment_intent, payment_record",
                param="payment[type]",
            )
        items = [item for item in items if item["payment"]["type"] == payment["type"]]
        if pi_id := payment.get("payment_intent"):
            items = [item for item in items if item["payment"].get("payment_intent") == pi_id]
        if payment.get("payment_record"):
            items = []  # the sandbox records no payments made outside Stripe
    return paginate(call, items)


@route("/v1/invoice_payments/<id>", "GET", {})
def retrieve_invoice_payment(call: Call, id: str) -> dict[str, Any]:
    return call.store.get("invoice_payment", id, param="invoice_payment")


# --- refunds ------------------------------------------------------------------------------------

REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")


@route(
    "/v1/refunds",
    "POST",
    {
        "charge": SCALAR,
        "payment_intent": SCALAR,
        "amount": SCALAR,
        "reason": SCALAR,
        "metadata": MAP,
        "instructions_email": SCALAR,
    },
)
def create_refund(call: Call) -> dict[str, Any]:
    params, store = call.params, call.store
    charge = None
    if params.get("payment_intent"):
        pi = store.get("payment_intent", params["payment_intent"], param="payment_intent")
        if pi["status"] != "succeeded" or not pi["latest_charge"]:
            raise invalid(
                f"This PaymentIntent ({pi['id']}) does not have a successful charge to refund.",
                param="payment_intent",
                code="charge_not_refundable",
            )
        charge = store.get("charge", pi["latest_charge"])
    if params.get("charge"):
        by_charge = store.get("charge", params["charge"], param="charge")
        if charge is not None and by_charge["id"] != charge["id"]:
            raise invalid(
                f"The charge {by_charge['id']} does not belong to the PaymentIntent "
                f"{params['payment_intent']}.",
                param="charge",
            )
        charge = by_charge
    if charge is None:
        raise invalid(
            "One of the following params should be provided for this request: payment_intent "
            "or charge.",
            code="parameter_missing",
        )
    amount = None
    if "amount" in params:
        amount = as_int(params["amount"], "amount")
        if amount < 1:
            raise invalid(
                "Invalid positive integer", param="amount", code="parameter_invalid_integer"
            )
    reason = params.get("reason") or None
    if reason is not None and reason not in REFUND_REASONS:
        raise invalid(f"Invalid reason: must be one of {', '.join(REFUND_REASONS)}", param="reason")
    return payments.refund_charge(
        store,
        store.get("charge", charge["id"], for_update=True),
        amount=amount,
        reason=reason,
        metadata=merge_metadata(params.get("metadata")),
    )


@route("/v1/refunds", "GET", {**LIST, "charge": SCALAR, "payment_intent": SCALAR})
def list_refunds(call: Call) -> dict[str, Any]:
    items = _where(
        call.store.query("refund"),
        charge=call.params.get("charge"),
        payment_intent=call.params.get("payment_intent"),
    )
    return paginate(call, items)


@route("/v1/refunds/<id>", "GET", {})
def retrieve_refund(call: Call, id: str) -> dict[str, Any]:
    return call.store.get("refund", id, param="refund")


@route("/v1/refunds/<id>", "POST", {"metadata": MAP})
def update_refund(call: Call, id: str) -> dict[str, Any]:
    refund = call.store.get("refund", id, param="refund", for_update=True)
    before = copy.deepcopy(refund)
    if "metadata" in call.params:
        refund["metadata"] = merge_metadata(call.params["metadata"], refund["metadata"])
    call.store.save(refund)
    if changes := diff(before, refund):
        call.store.emit("refund.updated", refund, changes)
    return refund


# --- disputes -----------------------------------------------------------------------------------


@route("/v1/disputes", "GET", {**LIST, "charge": SCALAR, "payment_intent": SCALAR})
def list_disputes(call: Call) -> dict[str, Any]:
    items = _where(
        call.store.query("dispute"),
        charge=call.params.get("charge"),
        payment_intent=call.params.get("payment_intent"),
    )
    return paginate(call, items)


@route("/v1/disputes/<id>", "GET", {})
def retrieve_dispute(call: Call, id: str) -> dict[str, Any]:
    return call.store.get("dispute", id, param="dispute")


@route(
    "/v1/disputes/<id>",
    "POST",
    {
        "evidence": dict.fromkeys(EVIDENCE_FIELDS, SCALAR),
        "metadata": MAP,
        "submit": SCALAR,
    },
)
def update_dispute(call: Call, id: str) -> dict[str, Any]:
    dispute = call.store.get("dispute", id, param="dispute", for_update=True)
    params = call.params
    return payments.update_dispute(
        call.store,
        dispute,
        evidence=params.get("evidence"),
        metadata=(
            merge_metadata(params["metadata"], dispute["metadata"])
            if "metadata" in params
            else None
        ),
        # "If false, evidence is staged on the dispute … true (the default)"
        # (docs.stripe.com/api/disputes/update). Assumption: a request carrying no evidence
        # (metadata only) submits nothing.
        submit=as_bool(params.get("submit", "evidence" in params), "submit"),
    )


@route("/v1/disputes/<id>/close", "POST", {})
def close_dispute(call: Call, id: str) -> dict[str, Any]:
    dispute = call.store.get("dispute", id, param="dispute", for_update=True)
    return payments.close_dispute(call.store, dispute, "lost")
