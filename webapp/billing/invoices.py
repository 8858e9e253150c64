"""Our copy of Stripe's invoices and their plan lines: what was paid, and what went back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from sqlalchemy import select

from webapp.billing.stripe_facts import InvoiceFacts
from webapp.catalog import get_catalog
from webapp.database import insert_or_ignore
from webapp.extensions import db
from webapp.models import Invoice, InvoiceLine

# The session's list of `RefundSeen` since its last commit or rollback (see billing/emails.py).
REFUNDS_SEEN = "invoice_refunds_seen"


@dataclass(frozen=True)
class RefundSeen:
    invoice_id: str
    user_id: int
    before: int  # cents refunded as we held it
    after: int  # as Stripe has it now


def invoice_sequence(number: str | None) -> int:
    """The count in an invoice number (`PREFIX-0042` → 42); Stripe counts up per customer."""
    _prefix, _, sequence = (number or "").rpartition("-")
    return int(sequence) if sequence.isdigit() else 0


def billing_order(invoice: Invoice) -> tuple[datetime, int, str]:
    """The order Stripe billed invoices in: by time, then by invoice number, which tells apart
    invoices of the same second."""
    return invoice.created, invoice_sequence(invoice.number), invoice.id


def store_invoice(facts: InvoiceFacts, user_id: int) -> Invoice:
    """Our copy of an invoice and its plan lines, unless we hold a copy read later than this one.

    The caller holds the member's lock, so nothing else writes this invoice meanwhile.
    """
    values = {
        "user_id": user_id,
        "created": facts.created,
        "status": facts.status,
        "currency": facts.currency,
        "total": facts.total,
        "synced_at": facts.fetched_at,
    }
    insert_or_ignore(Invoice, {"id": facts.id, **values}, ["id"])
    row = db.session.scalars(
        select(Invoice).where(Invoice.id == facts.id).execution_options(populate_existing=True)
    ).one()
    if row.synced_at is not None and facts.fetched_at < row.synced_at:
        return row  # a worker that read Stripe after us has stored what it saw: keep it
    if facts.amount_refunded > (row.amount_refunded or 0):
        # Money went back since our last read: billing mail tells the member, whichever path
        # stored it (a webhook, the success page), before this transaction commits.
        seen = RefundSeen(facts.id, row.user_id, row.amount_refunded or 0, facts.amount_refunded)
        db.session.info.setdefault(REFUNDS_SEEN, []).append(seen)
    row.synced_at = facts.fetched_at
    row.stripe_subscription_id = facts.subscription_id
    row.status = facts.status
    row.billing_reason = facts.billing_reason
    row.total = facts.total
    row.subtotal = facts.subtotal
    row.total_discount = facts.total_discount
    row.total_tax = facts.total_tax
    row.amount_paid = facts.amount_paid
    row.amount_refunded = facts.amount_refunded
    row.amount_disputed = facts.amount_disputed
    row.number = facts.number
    row.hosted_invoice_url = facts.hosted_invoice_url
    row.invoice_pdf = facts.invoice_pdf
    _store_lines(facts)
    db.session.flush()
    return row


def _store_lines(facts: InvoiceFacts) -> None:
    catalog = get_catalog()
    for line in facts.lines:
        price = line.price
        plan_id = price.plan_id if price else None
        credits = catalog.plan(plan_id).monthly_credits * line.quantity if plan_id else 0
        if line.trial:
            credits = 0  # a trial's $0 line buys no plan credits (billing/trials.py)
        values = {
            "invoice_id": facts.id,
            "stripe_subscription_id": line.subscription_id or facts.subscription_id,
            "stripe_price_id": price.id if price else None,
            "plan_id": plan_id,
            "cycle": price.cycle if price else None,
            "credits_per_month": credits,
            "amount": line.amount,
            "proration": line.proration,
            "period_start": line.period_start,
            "period_end": line.period_end,
        }
        # A finalized invoice's lines never change; the first copy stays (its credits figure
        # is what the plan granted when it was billed, even if the catalog changes later).
        insert_or_ignore(InvoiceLine, {"id": line.id, **values}, ["id"])


def kept_share(invoice: Invoice, bought_cents: int) -> Fraction:
    """The share of what an invoice bought that stayed paid.

    `bought_cents` is the sum of its lines that charge (full prices and charged prorations). Money
    that went back (refunds, open or lost disputes) comes out of those; unused time it credited
    stays credited, so it is not part of the share.
    """
    if invoice.status != "paid":
        return Fraction(0)
    if bought_cents <= 0:
        return Fraction(1)  # nothing was charged for, so nothing can go back
    back = min(invoice.amount_refunded + invoice.amount_disputed, bought_cents)
    return Fraction(bought_cents - back, bought_cents)
