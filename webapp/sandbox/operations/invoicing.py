"""Invoices: what a line says, creating and finalizing an invoice with the subscription's
discounts and the customer's credit balance applied, and the PaymentIntent Stripe makes for
what is left to pay."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from webapp.sandbox import objects
from webapp.sandbox.operations.discounts import after_invoiced, apply_discounts
from webapp.sandbox.operations.tax import apply_tax, record_customer
from webapp.sandbox.store import Store, new_id


def item_price(store: Store, item: dict[str, Any]) -> dict[str, Any]:
    """The Price a subscription item is on, as it is now."""
    return store.get("price", item["price"])


def product_name(store: Store, price: dict[str, Any]) -> str:
    product = store.find(price["product"]) or {}
    return product.get("name") or price["nickname"] or price["product"]


def _money(amount: int, currency: str) -> str:
    symbol = "$" if currency == "usd" else f"{currency.upper()} "
    return f"{symbol}{amount / 100:,.2f}"


TIMES = "\u00d7"  # the multiplication sign Stripe writes between quantity and product


def describe(store: Store, price: dict[str, Any], quantity: int = 1) -> str:
    """A subscription line's description as Stripe writes it: quantity, TIMES, product, and
    the price per interval ("1 TIMES Starter (at $4.99 / month)")."""
    interval = price["recurring"]["interval"]
    count = price["recurring"]["interval_count"]
    every = interval if count == 1 else f"every {count} {interval}s"
    amount = _money(price["unit_amount"], price["currency"])
    return f"{quantity} {TIMES} {product_name(store, price)} (at {amount} / {every})"


def _day(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%d %b %Y").lstrip("0")


def period_line(
    store: Store,
    item: dict[str, Any],
    price: dict[str, Any],
    start: int,
    end: int,
    *,
    amount: int | None = None,
) -> dict[str, Any]:
    """The line charging `item` for [start, end] (the full price unless `amount` is given)."""
    quantity = item["quantity"]
    return objects.line_spec(
        description=describe(store, price, quantity),
        amount=price["unit_amount"] * quantity if amount is None else amount,
        price=price,
        quantity=quantity,
        start=start,
        end=end,
        item_id=item["id"],
    )


def proration_line(
    store: Store,
    item: dict[str, Any],
    price: dict[str, Any],
    quantity: int,
    *,
    credit: bool,
    at: int,
    start: int,
    end: int,
) -> dict[str, Any] | None:
    """A proration for [at, end] of a period [start, end], by the second and rounded to the
    cent as Stripe does (docs.stripe.com/billing/subscriptions/prorations): a credit for unused
    time on the old price, or a charge for the remaining time on the new one. None when there
    is no time left."""
    if at >= end:
        return None
    full = price["unit_amount"] * quantity
    amount = round(full * (end - at) / max(end - start, 1))
    if amount == 0:
        return None
    name = product_name(store, price)
    quantity_note = f"{quantity} {TIMES} " if quantity != 1 else ""
    description = (
        f"Unused time on {quantity_note}{name} after {_day(at)}"
        if credit
        else f"Remaining time on {quantity_note}{name} after {_day(at)}"
    )
    return objects.line_spec(
        description=description,
        amount=-amount if credit else amount,
        price=price,
        quantity=quantity,
        start=at,
        end=end,
        item_id=item["id"],
        proration=True,
    )


def create_invoice(
    store: Store,
    customer: dict[str, Any],
    sub: dict[str, Any],
    billing_reason: str,
    specs: list[dict[str, Any]],
    period_start: int,
    period_end: int,
) -> dict[str, Any]:
    """A finalized invoice for `specs` (pending items first, then subscription items, as Stripe
    orders lines), with the customer's credit balance applied."""
    invoice = build_invoice(
        store, customer, sub, billing_reason, specs, period_start, period_end, new_id("in_")
    )
    after_invoiced(store, sub, invoice)
    customer["balance"] = invoice["ending_balance"]
    customer["next_invoice_sequence"] += 1
    store.save(customer)
    invoice["status"] = "draft"
    store.save(invoice)
    store.emit("invoice.created", invoice)
    finalize_invoice(store, invoice)
    return invoice


def build_invoice(
    store: Store,
    customer: dict[str, Any],
    sub: dict[str, Any],
    billing_reason: str,
    specs: list[dict[str, Any]],
    period_start: int,
    period_end: int,
    invoice_id: str,
) -> dict[str, Any]:
    """The invoice Stripe would make, saved nowhere (create_invoice and previews share it)."""
    lines = [objects.invoice_line(invoice_id, sub["id"], spec) for spec in specs]
    invoice = objects.invoice(
        store.now(),
        invoice_id=invoice_id,
        customer_obj=customer,
        subscription_obj=sub,
        billing_reason=billing_reason,
        lines=lines,
        period_start=period_start,
        period_end=period_end,
    )
    apply_discounts(store, invoice, sub)
    record_customer(store, invoice, customer)
    # Tax on what is left after discounts, from where the customer is now (operations.tax).
    if (sub.get("automatic_tax") or {}).get("enabled"):
        apply_tax(store, invoice, customer)
    # A negative balance is credit the customer holds (from a downgrade or a prorated
    # cancellation); it pays what it can, and a negative total adds to it.
    balance, total = customer["balance"], invoice["total"]
    applied = max(min(total, -balance), 0) if balance < 0 else 0
    invoice["amount_due"] = invoice["amount_remaining"] = max(total - applied, 0)
    invoice["ending_balance"] = balance + applied + min(total, 0)
    return invoice


def finalize_invoice(store: Store, invoice: dict[str, Any]) -> None:
    """Draft → open. Stripe makes the invoice's PaymentIntent and its default InvoicePayment
    now (SDK `_invoice_payment.py`: "Stripe automatically creates a default InvoicePayment
    when the invoice is finalized")."""
    now = store.now()
    invoice["status"] = "open"
    invoice["status_transitions"]["finalized_at"] = now
    invoice["hosted_invoice_url"] = hosted_invoice_link(store, invoice)
    store.save(invoice)
    store.emit("invoice.finalized", invoice)
    if invoice["amount_due"] <= 0:
        return
    pi = objects.payment_intent(
        now,
        amount=invoice["amount_due"],
        currency=invoice["currency"],
        customer_id=invoice["customer"],
        billing_reason=invoice["billing_reason"],
    )
    pi["_invoice"] = invoice["id"]
    store.save(pi)
    store.emit("payment_intent.created", pi)
    payment = objects.invoice_payment(now, invoice_obj=invoice, payment_intent_id=pi["id"])
    store.save(payment)
    # Private links, so collecting the invoice needs no search.
    invoice["_payment_intent"], invoice["_invoice_payments"] = pi["id"], [payment["id"]]
    store.save(invoice)


def hosted_invoice_link(store: Store, invoice: dict[str, Any]) -> str:
    """The hosted invoice page's address, made when the invoice is finalized ("If the invoice
    has not been finalized yet, this will be null", SDK `_invoice.py`, hosted_invoice_url).

    Like Stripe's (invoice.stripe.com/i/acct_…/test_…), the link holds an unguessable token
    rather than the invoice id: whoever has it may see and pay the invoice. The token is a
    private sandbox object pointing at the invoice.
    """
    token = new_id("test_", 40)
    store.save(
        {
            "id": token,
            "object": "sandbox.hosted_invoice_link",
            "created": store.now(),
            "customer": invoice["customer"],
            "invoice": invoice["id"],
        }
    )
    return f"{store.public_base}sandbox/i/{token}"


def invoice_payments(store: Store, invoice: dict[str, Any]) -> list[dict[str, Any]]:
    """The invoice's InvoicePayments (one: the sandbox makes no partial payments)."""
    return [store.get("invoice_payment", pid) for pid in invoice.get("_invoice_payments", [])]
