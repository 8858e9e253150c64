"""Credit notes: create, list, retrieve, update, void, and their lines."""

from __future__ import annotations

import copy
from typing import Any

from webapp.sandbox.api.invoices import get_invoice
from webapp.sandbox.api.routing import LIST, Call, merge_metadata, paginate, route
from webapp.sandbox.operations import credit_notes
from webapp.sandbox.operations.credit_notes import LineRequest, NoteRequest
from webapp.sandbox.wire import MAP, SCALAR, as_int, invalid

# SDK `params/_credit_note_create_params.py`; tax and shipping fields are refused as unknown
# (the sandbox has no tax rates or shipping rates to credit).
LINE = {
    "type": SCALAR,
    "invoice_line_item": SCALAR,
    "amount": SCALAR,
    "quantity": SCALAR,
    "unit_amount": SCALAR,
    "description": SCALAR,
    "metadata": MAP,
}
REFUND = {"refund": SCALAR, "amount_refunded": SCALAR, "type": SCALAR}
REASONS = ("duplicate", "fraudulent", "order_change", "product_unsatisfactory")


@route(
    "/v1/credit_notes",
    "POST",
    {
        "invoice": SCALAR,
        "amount": SCALAR,
        "lines": [LINE],
        "refund_amount": SCALAR,
        "refunds": [REFUND],
        "credit_amount": SCALAR,
        "out_of_band_amount": SCALAR,
        "memo": SCALAR,
        "metadata": MAP,
        "reason": SCALAR,
        "effective_at": SCALAR,
        "email_type": SCALAR,
    },
)
def create_credit_note(call: Call) -> dict[str, Any]:
    params = call.params
    if not params.get("invoice"):
        raise invalid("Missing required param: invoice.", param="invoice", code="parameter_missing")
    request = _note_request(params)
    if params.get("email_type") not in (None, "credit_note", "none"):
        raise invalid("Invalid email_type: must be one of credit_note or none", "email_type")
    invoice = get_invoice(call.store, params["invoice"], param="invoice", for_update=True)
    return credit_notes.create_credit_note(call.store, invoice, request)


def _note_request(params: dict[str, Any]) -> NoteRequest:
    reason = params.get("reason") or None
    if reason is not None and reason not in REASONS:
        raise invalid(f"Invalid reason: must be one of {', '.join(REASONS)}", param="reason")
    return NoteRequest(
        lines=[_line(index, line) for index, line in enumerate(params.get("lines") or [])],
        amount=_amount(params, "amount"),
        refund_amount=_amount(params, "refund_amount") or 0,
        credit_amount=_amount(params, "credit_amount") or 0,
        out_of_band_amount=_amount(params, "out_of_band_amount"),
        refunds=[_refund(index, item) for index, item in enumerate(params.get("refunds") or [])],
        memo=params.get("memo") or None,
        metadata=merge_metadata(params.get("metadata")),
        reason=reason,
        effective_at=_amount(params, "effective_at"),
    )


def _amount(params: dict[str, Any], name: str, where: str | None = None) -> int | None:
    """A non-negative integer parameter, or None when absent."""
    if name not in params or params[name] == "":
        return None
    where = where or name
    value = as_int(params[name], where)
    if value < 0:
        raise invalid(
            "This value must be greater than or equal to 0.",
            param=where,
            code="parameter_invalid_integer",
        )
    return value


def _line(index: int, line: dict[str, Any]) -> LineRequest:
    where = f"lines[{index}]"
    if not line.get("type"):
        raise invalid(
            f"Missing required param: {where}[type].",
            param=f"{where}[type]",
            code="parameter_missing",
        )
    return LineRequest(
        index=index,
        type=line["type"],
        invoice_line_item=line.get("invoice_line_item") or None,
        amount=_amount(line, "amount", f"{where}[amount]"),
        quantity=_amount(line, "quantity", f"{where}[quantity]"),
        unit_amount=_amount(line, "unit_amount", f"{where}[unit_amount]"),
        description=line.get("description") or None,
        metadata=merge_metadata(line.get("metadata")),
    )


def _refund(index: int, item: dict[str, Any]) -> tuple[str, int | None]:
    where = f"refunds[{index}]"
    if item.get("type", "refund") != "refund":
        # The sandbox records no payments made outside Stripe (no PaymentRecords).
        raise invalid(f"Invalid {where}[type]: must be refund", param=f"{where}[type]")
    if not item.get("refund"):
        raise invalid(
            f"Missing required param: {where}[refund].",
            param=f"{where}[refund]",
            code="parameter_missing",
        )
    return item["refund"], _amount(item, "amount_refunded", f"{where}[amount_refunded]")


@route(
    "/v1/credit_notes",
    "GET",
    {**LIST, "invoice": SCALAR, "customer": SCALAR, "customer_account": SCALAR},
)
def list_credit_notes(call: Call) -> dict[str, Any]:
    params = call.params
    items = call.store.query("credit_note", customer=params.get("customer"))
    if invoice := params.get("invoice"):
        items = [note for note in items if note["invoice"] == invoice]
    if params.get("customer_account"):
        items = []  # the sandbox has no Accounts v2 customers
    return paginate(call, items)


@route("/v1/credit_notes/<id>", "GET", {})
def retrieve_credit_note(call: Call, id: str) -> dict[str, Any]:
    return call.store.get("credit_note", id)


@route("/v1/credit_notes/<id>/lines", "GET", LIST)
def list_credit_note_lines(call: Call, id: str) -> dict[str, Any]:
    note = call.store.get("credit_note", id)
    return paginate(call, copy.deepcopy(note["lines"]["data"]))


@route("/v1/credit_notes/<id>", "POST", {"memo": SCALAR, "metadata": MAP})
def update_credit_note(call: Call, id: str) -> dict[str, Any]:
    note = call.store.get("credit_note", id, for_update=True)
    params = call.params
    return credit_notes.update_credit_note(
        call.store,
        note,
        memo=params.get("memo") if "memo" in params else None,
        metadata=(
            merge_metadata(params["metadata"], note["metadata"]) if "metadata" in params else None
        ),
    )


@route("/v1/credit_notes/<id>/void", "POST", {})
def void_credit_note(call: Call, id: str) -> dict[str, Any]:
    note = call.store.get("credit_note", id, for_update=True)
    return credit_notes.void_credit_note(call.store, note)
