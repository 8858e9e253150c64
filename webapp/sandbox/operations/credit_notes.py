"""Credit notes: taking money off a finalized invoice, and voiding that again.

What Stripe documents (API reference "Create a credit note" for the pinned API version, and the
SDK's `_credit_note.py`): a note first reduces the invoice's `amount_remaining` (and
`amount_due`), never below zero: that is its `pre_payment_amount`. The rest, its
`post_payment_amount`, is money already paid going back, split among a new refund
(`refund_amount`), linked refunds (`refunds`), the customer's balance (`credit_amount`) and
credit outside Stripe (`out_of_band_amount`), which must add up to it exactly. Each note adds to
the invoice's `pre_payment_credit_notes_amount` and `post_payment_credit_notes_amount`. The sum
of an invoice's notes cannot exceed its total (docs.stripe.com/billing/invoices/credit-notes).

Errors worded as Stripe words them where an integration recorded it (a public integration test
against Stripe's test mode): "The sum of credit amount, refund amount and out of band amount
($1.00) must equal the credit note amount ($2.00)." and "You can only void a credit note if the
associated invoice is open." (the latter also in Stripe's OpenAPI description of the void
endpoint, as client libraries generated from it repeat). Other wordings are assumptions, marked.
Events in the order that test recorded: the refund's (`refund.created`, `charge.refunded`),
`invoice.updated`, `customer.updated` (a balance credit), `credit_note.created`; voiding sends
`invoice.updated`, `credit_note.voided`; an update sends `credit_note.updated`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from webapp.sandbox import objects
from webapp.sandbox.operations.invoicing import invoice_payments
from webapp.sandbox.operations.payments import _mark_paid, after_invoice_paid, refund_charge
from webapp.sandbox.store import Store, diff
from webapp.sandbox.wire import invalid, refused


@dataclass(frozen=True)
class LineRequest:
    """`lines[i]` of the request, decoded; `index` names it in errors."""

    index: int
    type: str
    invoice_line_item: str | None = None
    amount: int | None = None
    quantity: int | None = None
    unit_amount: int | None = None
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NoteRequest:
    """`POST /v1/credit_notes`, decoded (amounts are 0 when not given)."""

    lines: list[LineRequest]
    amount: int | None
    refund_amount: int = 0
    credit_amount: int = 0
    out_of_band_amount: int | None = None
    refunds: list[tuple[str, int | None]] = field(default_factory=list)  # (refund id, amount)
    memo: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    reason: str | None = None
    effective_at: int | None = None


def money(amount: int) -> str:
    return f"${amount / 100:,.2f}"


# --- creating ---------------------------------------------------------------------------------


def create_credit_note(store: Store, invoice: dict[str, Any], request: NoteRequest) -> dict:
    """Issue a credit note on `invoice` (locked by the caller)."""
    if invoice["status"] not in ("open", "paid") or invoice.get("_preview"):
        # Assumption: Stripe's wording is undocumented; credit notes exist for open and paid
        # invoices only (docs.stripe.com/billing/invoices/credit-notes, "Issuing credit notes").
        raise refused(
            "You can only create a credit note for an invoice whose status is `open` or "
            f"`paid`; this invoice is `{invoice['status']}`.",
            param="invoice",
        )
    issued = [note for note in notes_of(store, invoice["id"]) if note["status"] == "issued"]
    lines = _note_lines(invoice, request, issued)
    total = sum(note_amount(line) for line in lines)
    _check_total(invoice, request, total, issued)
    pre = min(total, invoice["amount_remaining"]) if invoice["status"] == "open" else 0
    post = total - pre
    linked = _linked_refunds(store, invoice, request.refunds)
    _check_split(request, linked, total, post)

    refunds = [objects.credit_note_refund(r["id"], amount) for r, amount in linked]
    if request.refund_amount:
        refund = refund_charge(
            store,
            _invoice_charge(store, invoice),
            amount=request.refund_amount,
            reason=None,
            metadata={},
        )
        refunds.append(objects.credit_note_refund(refund["id"], request.refund_amount))
    number = f"{invoice['number']}-CN-{len(notes_of(store, invoice['id'])) + 1:02d}"
    note = objects.credit_note(
        store.now(),
        invoice_obj=invoice,
        number=number,
        lines=lines,
        pre_payment_amount=pre,
        post_payment_amount=post,
        out_of_band_amount=request.out_of_band_amount,
        refunds=refunds,
        memo=request.memo,
        metadata=request.metadata,
        reason=request.reason,
        effective_at=request.effective_at,
    )
    _show_tax(note, lines)
    _take_off_invoice(store, invoice, pre, post)
    if request.credit_amount:
        note["customer_balance_transaction"] = _credit_balance(
            store, invoice, note["id"], request.credit_amount
        )
    store.save(note)
    store.emit("credit_note.created", note)
    return note


def _show_tax(note: dict[str, Any], lines: list[dict[str, Any]]) -> None:
    """A note that gives back tax shows it apart, as an invoice does."""
    taxes = [t for line in lines for t in line["taxes"]]
    if not taxes:
        return
    subtotal = sum(line["amount"] for line in lines)
    note["subtotal"] = note["subtotal_excluding_tax"] = note["total_excluding_tax"] = subtotal
    note["total_taxes"] = [
        {
            **taxes[0],
            "amount": sum(t["amount"] for t in taxes),
            "taxable_amount": sum(t["taxable_amount"] or 0 for t in taxes),
        }
    ]


def notes_of(store: Store, invoice_id: str) -> list[dict[str, Any]]:
    """An invoice's credit notes, void ones included, newest first."""
    return [note for note in store.query("credit_note") if note["invoice"] == invoice_id]


def _note_lines(
    invoice: dict[str, Any], request: NoteRequest, issued: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    if request.lines:
        return [_note_line(invoice, line, issued) for line in request.lines]
    if request.amount is None:
        raise invalid(
            "One of `amount`, `lines`, or `shipping_cost` must be provided.",
            code="parameter_missing",
        )
    # Assumption: a note given only an `amount` shows it as one custom line (Stripe does not
    # document the lines of such a note).
    return [
        objects.credit_note_line(
            amount=request.amount,
            quantity=1,
            description=None,
            invoice_line_item=None,
            unit_amount=request.amount,
            metadata={},
        )
    ]


def _note_line(
    invoice: dict[str, Any], line: LineRequest, issued: list[dict[str, Any]]
) -> dict[str, Any]:
    where = f"lines[{line.index}]"
    if line.type == "custom_line_item":
        if line.unit_amount is None:
            raise invalid(
                f"Missing required param: {where}[unit_amount].",
                param=f"{where}[unit_amount]",
                code="parameter_missing",
            )
        quantity = 1 if line.quantity is None else line.quantity
        return objects.credit_note_line(
            amount=line.unit_amount * quantity,
            quantity=quantity,
            description=line.description,
            invoice_line_item=None,
            unit_amount=line.unit_amount,
            metadata=line.metadata,
        )
    if line.type != "invoice_line_item":
        raise invalid(
            f"Invalid {where}[type]: must be one of custom_line_item or invoice_line_item",
            param=f"{where}[type]",
        )
    invoice_line = next(
        (item for item in invoice["lines"]["data"] if item["id"] == line.invoice_line_item), None
    )
    if invoice_line is None:
        raise invalid(
            f"No such invoice line item: '{line.invoice_line_item}' on invoice {invoice['id']}.",
            param=f"{where}[invoice_line_item]",
            code="resource_missing",
        )
    return _credited_invoice_line(invoice_line, line, where, issued)


def _credited_invoice_line(
    invoice_line: dict[str, Any], line: LineRequest, where: str, issued: list[dict[str, Any]]
) -> dict[str, Any]:
    """An invoice line credited by amount or by quantity, never past what is left of it."""
    if (line.amount is None) == (line.quantity is None):
        # Assumption: Stripe's wording; "You can't combine discount types on an invoice line
        # item" (docs.stripe.com/invoicing/integration/programmatic-credit-notes).
        raise invalid(
            f"Provide exactly one of {where}[amount] or {where}[quantity] for an "
            "`invoice_line_item` line.",
            param=f"{where}[amount]",
        )
    before = [
        item
        for note in issued
        for item in note["lines"]["data"]
        if item["invoice_line_item"] == invoice_line["id"]
    ]
    if line.quantity is not None:
        unit = int(Decimal(invoice_line["pricing"]["unit_amount_decimal"]))
        left = invoice_line["quantity"] - sum(item["quantity"] or 0 for item in before)
        if line.quantity > left:
            raise invalid(
                f"The quantity to credit ({line.quantity}) is more than is left to credit on "
                f"invoice line item {invoice_line['id']} ({left}).",
                param=f"{where}[quantity]",
            )
        amount, quantity = unit * line.quantity, line.quantity
    else:
        amount, quantity = line.amount or 0, None
    left_amount = invoice_line["amount"] - sum(item["amount"] for item in before)
    if amount > left_amount:
        raise invalid(
            f"The amount to credit ({money(amount)}) is more than is left to credit on invoice "
            f"line item {invoice_line['id']} ({money(max(left_amount, 0))}).",
            param=f"{where}[amount]",
        )
    note_line = objects.credit_note_line(
        amount=amount,
        quantity=quantity,
        description=invoice_line["description"],
        invoice_line_item=invoice_line["id"],
        unit_amount=None,
        metadata=line.metadata,
    )
    note_line["taxes"] = _credited_tax(invoice_line, amount, left_amount, before)
    return note_line


def _credited_tax(
    invoice_line: dict[str, Any], amount: int, left_amount: int, before: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The tax a credited line gives back: the line's exclusive tax in proportion to the amount
    credited (a line's `amount` excludes tax; the note's `amount` includes it, SDK
    `_credit_note.py`), rounded half up, and all of what is left once the whole line is
    credited, so partial credits never give back more tax than was charged. Assumption: Stripe
    does not document its rounding here."""
    taxes = [t for t in invoice_line.get("taxes") or [] if t["tax_behavior"] == "exclusive"]
    if not taxes or not invoice_line["amount"]:
        return []
    line_tax = sum(t["amount"] for t in taxes)
    tax_before = sum(t["amount"] for item in before for t in item.get("taxes") or [])
    if amount == left_amount:
        tax = line_tax - tax_before
    else:
        share = Decimal(line_tax) * amount / invoice_line["amount"]
        tax = min(int(share.quantize(Decimal(1), rounding=ROUND_HALF_UP)), line_tax - tax_before)
    return [{**taxes[0], "amount": tax, "taxable_amount": amount}]


def note_amount(line: dict[str, Any]) -> int:
    """What a note line credits, tax included."""
    return line["amount"] + sum(t["amount"] for t in line.get("taxes") or [])


def _check_total(
    invoice: dict[str, Any], request: NoteRequest, total: int, issued: list[dict[str, Any]]
) -> None:
    if request.lines and request.amount is not None and request.amount != total:
        # Assumption: Stripe's wording.
        raise invalid(
            f"The credit note amount ({money(request.amount)}) must equal the sum of its lines "
            f"({money(total)}).",
            param="amount",
        )
    if total <= 0:
        raise invalid("The credit note amount must be greater than 0.", param="amount")
    creditable = invoice["total"] - sum(note["total"] for note in issued)
    if total > creditable:
        # "The sum of all credit notes cannot exceed the invoice's total amount"
        # (docs.stripe.com/billing/invoices/credit-notes); the wording is an assumption.
        raise invalid(
            f"The credit note amount ({money(total)}) is more than the invoice's remaining "
            f"creditable amount ({money(max(creditable, 0))}).",
            param="amount",
        )


def _linked_refunds(
    store: Store, invoice: dict[str, Any], wanted: list[tuple[str, int | None]]
) -> list[tuple[dict[str, Any], int]]:
    """`refunds[i][refund]`: existing refunds of this invoice's payment, each linked at most
    up to its amount across all of the invoice's issued notes."""
    linked = []
    for index, (refund_id, amount) in enumerate(wanted):
        where = f"refunds[{index}][refund]"
        refund = store.get("refund", refund_id, param=where)
        if refund["payment_intent"] != invoice.get("_payment_intent"):
            raise invalid(
                f"The refund {refund_id} is not a refund of invoice {invoice['id']}'s payment.",
                param=where,
            )
        used = sum(
            entry["amount_refunded"]
            for note in notes_of(store, invoice["id"])
            if note["status"] == "issued"
            for entry in note["refunds"]
            if entry["refund"] == refund_id
        )
        amount = refund["amount"] - used if amount is None else amount
        if amount <= 0 or used + amount > refund["amount"]:
            raise invalid(
                f"The refund {refund_id} has {money(refund['amount'] - used)} left to link to "
                "a credit note.",
                param=f"refunds[{index}][amount_refunded]",
            )
        linked.append((refund, amount))
    return linked


def _check_split(
    request: NoteRequest, linked: list[tuple[dict[str, Any], int]], total: int, post: int
) -> None:
    """What was paid and goes back must be said where it goes, to the cent."""
    split = (
        request.refund_amount
        + sum(amount for _refund, amount in linked)
        + request.credit_amount
        + (request.out_of_band_amount or 0)
    )
    if split == post:
        return
    if post == total:
        target = f"the credit note amount ({money(total)})"
    else:  # Assumption: the wording when part of the note only reduced what was due.
        target = f"the credit note's post-payment amount ({money(post)})"
    raise invalid(
        "The sum of credit amount, refund amount and out of band amount "
        f"({money(split)}) must equal {target}."
    )


def _invoice_charge(store: Store, invoice: dict[str, Any]) -> dict[str, Any]:
    pi = store.find(invoice.get("_payment_intent") or "")
    if not pi or pi["status"] != "succeeded" or not pi["latest_charge"]:
        # Assumption: Stripe's wording for a refund on an invoice nothing was charged for.
        raise invalid(
            f"Invoice {invoice['id']} has no successful charge to refund.",
            param="refund_amount",
        )
    return store.get("charge", pi["latest_charge"], for_update=True)


def _credit_balance(store: Store, invoice: dict[str, Any], note_id: str, amount: int) -> str:
    """`credit_amount`: credit the customer holds, applied to their next invoice."""
    customer = store.get("customer", invoice["customer"], for_update=True)
    before = copy.deepcopy(customer)
    customer["balance"] -= amount
    transaction = objects.customer_balance_transaction(
        store.now(),
        customer_obj=customer,
        amount=-amount,
        currency=invoice["currency"],
        credit_note_id=note_id,
        invoice_id=invoice["id"],
        transaction_type="credit_note",
    )
    store.save(transaction)
    store.save(customer)
    store.emit("customer.updated", customer, diff(before, customer))
    return transaction["id"]


def _take_off_invoice(store: Store, invoice: dict[str, Any], pre: int, post: int) -> None:
    """The invoice's credit note totals, and what it still asks to be paid."""
    before = copy.deepcopy(invoice)
    invoice["pre_payment_credit_notes_amount"] += pre
    invoice["post_payment_credit_notes_amount"] += post
    _change_amount_due(store, invoice, -pre)
    store.save(invoice)
    store.emit("invoice.updated", invoice, diff(before, invoice))
    if invoice["status"] == "open" and invoice["amount_remaining"] == 0:
        # Nothing is left to pay: the invoice is paid, with no payment (the Dashboard guide on
        # credit notes: a note that reduces an open invoice's balance to zero marks it paid).
        _mark_paid(store, invoice, 0)
        after_invoice_paid(store, invoice)


def _change_amount_due(store: Store, invoice: dict[str, Any], change: int) -> None:
    """Move an open invoice's amount due; its PaymentIntent asks for what is left (canceled,
    with its InvoicePayment, once nothing is)."""
    if not change:
        return
    invoice["amount_due"] += change
    invoice["amount_remaining"] += change
    pi = store.find(invoice.get("_payment_intent") or "")
    if pi is None or pi["status"] in ("succeeded", "canceled"):
        return
    now = store.now()
    pi["amount"] = invoice["amount_remaining"]
    if pi["amount"] == 0:
        # Assumption: the canceled PaymentIntent gives the reason a voided invoice's does.
        pi.update(status="canceled", canceled_at=now, cancellation_reason="void_invoice")
    store.save(pi)
    for payment in invoice_payments(store, invoice):
        if payment["status"] == "open":
            payment["amount_requested"] = invoice["amount_remaining"]
            if pi["status"] == "canceled":
                payment["status"] = "canceled"
                payment["status_transitions"]["canceled_at"] = now
            store.save(payment)


# --- voiding and updating ---------------------------------------------------------------------


def void_credit_note(store: Store, note: dict[str, Any]) -> dict[str, Any]:
    """issued → void, on an open invoice only: what it took off is due again."""
    if note["status"] == "void":
        # Assumption: Stripe's wording.
        raise refused(f"The credit note {note['id']} has already been voided.")
    invoice = store.get("invoice", note["invoice"], for_update=True)
    if invoice["status"] != "open":
        raise refused("You can only void a credit note if the associated invoice is open.")
    before = copy.deepcopy(invoice)
    invoice["pre_payment_credit_notes_amount"] -= note["pre_payment_amount"]
    invoice["post_payment_credit_notes_amount"] -= note["post_payment_amount"]
    _change_amount_due(store, invoice, note["pre_payment_amount"])
    store.save(invoice)
    store.emit("invoice.updated", invoice, diff(before, invoice))
    note["status"], note["voided_at"] = "void", store.now()
    store.save(note)
    store.emit("credit_note.voided", note)
    return note


def update_credit_note(
    store: Store, note: dict[str, Any], *, memo: str | None, metadata: dict[str, str] | None
) -> dict[str, Any]:
    """Only the memo and the metadata change (SDK `_credit_note_modify_params.py`)."""
    before = copy.deepcopy(note)
    if memo is not None:
        note["memo"] = memo or None
    if metadata is not None:
        note["metadata"] = metadata
    store.save(note)
    if changes := diff(before, note):
        store.emit("credit_note.updated", note, changes)
    return note
