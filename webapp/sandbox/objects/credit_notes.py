"""Credit notes, their lines, and the customer balance transactions a credit makes.

Field for field as the SDK's `_credit_note.py`, `_credit_note_line_item.py` and
`_customer_balance_transaction.py` declare them for the pinned API version, which splits a note
into `pre_payment_amount` (what it took off the invoice's `amount_remaining`) and
`post_payment_amount` (the rest: refunded, credited to the balance or settled outside Stripe).
"""

from __future__ import annotations

from typing import Any

from webapp.sandbox.objects.common import list_object
from webapp.sandbox.store import new_id

# The sandbox renders no PDFs; `pdf` (a string, never null, in the SDK) names where one would be.
PDF_URL = "https://sandbox.invalid/credit_notes/{id}/pdf"


def credit_note_line(
    *,
    amount: int,
    quantity: int | None,
    description: str | None,
    invoice_line_item: str | None,
    unit_amount: int | None,
    metadata: dict[str, str],
) -> dict[str, Any]:
    """One line: an invoice line credited (by amount or quantity), or a custom line."""
    return {
        "id": new_id("cnli_"),
        "object": "credit_note_line_item",
        "amount": amount,
        "description": description,
        "discount_amount": 0,
        "discount_amounts": [],
        "invoice_line_item": invoice_line_item,
        "livemode": False,
        "metadata": metadata,
        "pretax_credit_amounts": [],
        "quantity": quantity,
        "tax_rates": [],
        "taxes": [],
        "type": "invoice_line_item" if invoice_line_item else "custom_line_item",
        "unit_amount": unit_amount,
        "unit_amount_decimal": None if unit_amount is None else str(unit_amount),
    }


def credit_note(
    now: int,
    *,
    invoice_obj: dict[str, Any],
    number: str,
    lines: list[dict[str, Any]],
    pre_payment_amount: int,
    post_payment_amount: int,
    out_of_band_amount: int | None,
    refunds: list[dict[str, Any]],
    memo: str | None,
    metadata: dict[str, str],
    reason: str | None,
    effective_at: int | None,
) -> dict[str, Any]:
    """An issued credit note on `invoice_obj`; `type` says which part of it there is
    (`pre_payment`, `post_payment`, or `mixed` for both)."""
    note_id = new_id("cn_")
    total = pre_payment_amount + post_payment_amount
    if pre_payment_amount and post_payment_amount:
        note_type = "mixed"
    else:
        note_type = "pre_payment" if pre_payment_amount else "post_payment"
    return {
        "id": note_id,
        "object": "credit_note",
        "amount": total,
        "amount_shipping": 0,
        "created": now,
        "currency": invoice_obj["currency"],
        "customer": invoice_obj["customer"],
        "customer_account": None,
        "customer_balance_transaction": None,
        "discount_amount": 0,
        "discount_amounts": [],
        "effective_at": effective_at or now,
        "invoice": invoice_obj["id"],
        "lines": list_object(lines, f"/v1/credit_notes/{note_id}/lines"),
        "livemode": False,
        "memo": memo,
        "metadata": metadata,
        "number": number,
        "out_of_band_amount": out_of_band_amount,
        "pdf": PDF_URL.format(id=note_id),
        "post_payment_amount": post_payment_amount,
        "pre_payment_amount": pre_payment_amount,
        "pretax_credit_amounts": [],
        "reason": reason,
        "refunds": refunds,
        "shipping_cost": None,
        "status": "issued",
        "subtotal": total,
        "subtotal_excluding_tax": total,
        "total": total,
        "total_excluding_tax": total,
        "total_taxes": [],
        "type": note_type,
        "voided_at": None,
    }


def credit_note_refund(refund_id: str, amount_refunded: int) -> dict[str, Any]:
    """A refund as a credit note lists it (SDK `CreditNote.Refund`)."""
    return {
        "amount_refunded": amount_refunded,
        "payment_record_refund": None,
        "refund": refund_id,
        "type": "refund",
    }


def customer_balance_transaction(
    now: int,
    *,
    customer_obj: dict[str, Any],
    amount: int,
    currency: str,
    credit_note_id: str | None,
    invoice_id: str | None,
    transaction_type: str,
) -> dict[str, Any]:
    """A movement of the customer's balance; negative `amount` is credit the customer holds.

    `customer_obj["balance"]` must already include it (`ending_balance` is read from it).
    """
    return {
        "id": new_id("cbtxn_"),
        "object": "customer_balance_transaction",
        "amount": amount,
        "checkout_session": None,
        "created": now,
        "credit_note": credit_note_id,
        "currency": currency,
        "customer": customer_obj["id"],
        "customer_account": None,
        "description": None,
        "ending_balance": customer_obj["balance"],
        "invoice": invoice_id,
        "livemode": False,
        "metadata": {},
        "type": transaction_type,
    }
