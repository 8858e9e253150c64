"""The credits ledger: credits follow the money.

Invariants (README, "Credits"), each enforced here and nowhere else:

- Each paid billing month grants its plan's monthly credits exactly once: a monthly invoice when
  it is paid, a yearly one month by month (month 0 when paid, the others as they begin; a missed
  scheduler run catches up). A switch that starts a new period starts it with its own month 0.
- Credits are bought only by paid invoices: an upgrade's extra credits wait for its invoice.
- Money that goes back takes back what it bought, as negative entries: a credited proration (a
  downgrade that still applied mid-period), a refund (full or partial), a lost or open dispute,
  a voided invoice, pro rata. A won dispute gives them back. The balance may go below zero.
- For each (invoice, month) the ledger sums to exactly what that invoice buys in that month
  (rounded down: never more than was paid for). Settling writes only the difference, as one
  entry with a unique key, with the member locked, so a replayed or concurrent event adds nothing.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from math import floor

from sqlalchemy import func, select

from webapp.billing.credit_months import BilledLine, month_credits, periods
from webapp.billing.stripe_facts import InvoiceFacts
from webapp.catalog import get_catalog
from webapp.database import insert_or_ignore, lock_row
from webapp.extensions import db
from webapp.models import CreditEntry, Invoice, InvoiceLine, Subscription, User
from webapp.models.base import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CreditSummary:
    balance: int
    total_granted: int
    total_used: int
    recent: list[CreditEntry]


def credit_summary(user_id: int, recent: int = 10) -> CreditSummary:
    """The balance is derived from the ledger, never stored on its own."""
    granted, used = db.session.execute(
        select(
            func.coalesce(func.sum(CreditEntry.amount).filter(CreditEntry.amount > 0), 0),
            func.coalesce(-func.sum(CreditEntry.amount).filter(CreditEntry.amount < 0), 0),
        ).where(CreditEntry.user_id == user_id)
    ).one()
    entries = db.session.scalars(
        select(CreditEntry)
        .where(CreditEntry.user_id == user_id)
        .order_by(CreditEntry.created_at.desc(), CreditEntry.id.desc())
        .limit(recent)
    ).all()
    return CreditSummary(int(granted) - int(used), int(granted), int(used), list(entries))


def credits_for_invoice(invoice_id: str) -> int:
    """What an invoice has granted so far (the success page says so)."""
    total = db.session.scalar(
        select(func.coalesce(func.sum(CreditEntry.amount), 0)).where(
            CreditEntry.invoice_id == invoice_id
        )
    )
    return int(total or 0)


def add_entry(
    *,
    user_id: int,
    amount: int,
    grant_key: str,
    description: str,
    period_key: str | None = None,
    subscription_id: str | None = None,
    invoice_id: str | None = None,
) -> bool:
    """Add one ledger entry; False if `grant_key` is there already (a replay)."""
    if amount == 0:
        return False
    added = insert_or_ignore(
        CreditEntry,
        {
            "user_id": user_id,
            "amount": amount,
            "kind": "grant" if amount > 0 else "refund",
            "description": description[:255],
            "grant_key": grant_key,
            "period_key": period_key,
            "stripe_subscription_id": subscription_id,
            "invoice_id": invoice_id,
        },
        ["grant_key"],
    )
    if added:
        log.info("credits %+d for user %s (%s)", amount, user_id, grant_key)
    return added


# --- invoices and their lines ----------------------------------------------------------------


def store_invoice(facts: InvoiceFacts, user_id: int) -> Invoice:
    """Our copy of an invoice and its plan lines, as Stripe shows it now."""
    row = db.session.get(Invoice, facts.id)
    if row is None:
        row = Invoice(id=facts.id, user_id=user_id, created=facts.created)
        db.session.add(row)
    row.stripe_subscription_id = facts.subscription_id
    row.status = facts.status
    row.billing_reason = facts.billing_reason
    row.currency = facts.currency
    row.total = facts.total
    row.amount_paid = facts.amount_paid
    row.amount_refunded = facts.amount_refunded
    row.amount_disputed = facts.amount_disputed
    row.number = facts.number
    row.hosted_invoice_url = facts.hosted_invoice_url
    row.invoice_pdf = facts.invoice_pdf
    db.session.flush()
    catalog = get_catalog()
    for line in facts.lines:
        price = line.price
        plan_id = price.plan_id if price else None
        values = {
            "invoice_id": facts.id,
            "stripe_subscription_id": line.subscription_id or facts.subscription_id,
            "stripe_price_id": price.id if price else None,
            "plan_id": plan_id,
            "cycle": price.cycle if price else None,
            "credits_per_month": catalog.plan(plan_id).monthly_credits if plan_id else 0,
            "amount": line.amount,
            "proration": line.proration,
            "period_start": line.period_start,
            "period_end": line.period_end,
        }
        # A finalized invoice's lines never change; the first copy stays (its credits figure
        # is what the plan granted when it was billed, even if the catalog changes later).
        insert_or_ignore(InvoiceLine, {"id": line.id, **values}, ["id"])
    return row


def invoice_weight(invoice: Invoice) -> Fraction:
    """The share of an invoice that stayed paid: 0 unless paid, less what went back."""
    if invoice.status != "paid":
        return Fraction(0)
    if invoice.total <= 0:
        return Fraction(1)  # nothing was charged, so nothing can go back
    back = min(invoice.amount_refunded + invoice.amount_disputed, invoice.total)
    return Fraction(invoice.total - back, invoice.total)


# --- settling: the ledger made equal to what the invoices bought -------------------------------


def settle_subscription(subscription_id: str, user_id: int, now: datetime | None = None) -> int:
    """Bring every started month of the subscription's invoices to what they bought.

    Returns the number of entries written. The member's row is locked first, so two events of
    the same member settle one after the other and the second sees the first's entries.
    """
    lock_row(User, user_id)
    now_ts = int((now or utcnow()).timestamp())
    invoices = sorted(
        db.session.scalars(
            select(Invoice).where(Invoice.stripe_subscription_id == subscription_id)
        ),
        key=billing_order,
    )
    lines_by_invoice = _lines_by_invoice([invoice.id for invoice in invoices])
    known = _periods(subscription_id, invoices, lines_by_invoice)
    written = 0
    for invoice in invoices:
        lines = lines_by_invoice.get(invoice.id, [])
        bought = month_credits(lines, known)
        # Month 0 of what an invoice bills starts when Stripe billed it, which a test clock may
        # put ahead of our clock: a paid invoice's own lines have begun, by definition.
        started_by = max([now_ts, *(line.start for line in lines)])
        weight = invoice_weight(invoice)
        written += _settle_invoice_months(invoice, subscription_id, bought, weight, started_by)
        upcoming = [month for month in bought if month > started_by and weight > 0]
        invoice.next_credit_month_at = _at(min(upcoming)) if upcoming else None
    return written


def billing_order(invoice: Invoice) -> tuple[datetime, int, str]:
    """The order Stripe billed invoices in: by time, then by the customer's invoice number
    (`PREFIX-0042`, counted per customer), which tells apart invoices of the same second."""
    _prefix, _, sequence = (invoice.number or "").rpartition("-")
    return invoice.created, int(sequence) if sequence.isdigit() else 0, invoice.id


def _lines_by_invoice(invoice_ids: list[str]) -> dict[str, list[BilledLine]]:
    grouped: dict[str, list[BilledLine]] = defaultdict(list)
    if not invoice_ids:
        return grouped
    rows = db.session.scalars(
        select(InvoiceLine).where(InvoiceLine.invoice_id.in_(invoice_ids)).order_by(InvoiceLine.id)
    )
    for row in rows:
        grouped[row.invoice_id].append(
            BilledLine(
                id=row.id,
                credits_per_month=row.credits_per_month,
                amount=row.amount,
                proration=row.proration,
                start=int(row.period_start.timestamp()),
                end=int(row.period_end.timestamp()),
                cycle=row.cycle,
            )
        )
    return grouped


def _periods(subscription_id: str, invoices: list[Invoice], lines: dict[str, list[BilledLine]]):
    """The subscription's periods: its full-price lines' spans, and its current period."""
    spans = {
        (line.start, line.end, line.cycle, rank)
        for rank, invoice in enumerate(invoices)  # in the order Stripe billed them
        if invoice.status != "void"
        for line in lines.get(invoice.id, [])
        if not line.proration and line.credits_per_month
    }
    row = db.session.scalar(
        select(Subscription).where(Subscription.stripe_subscription_id == subscription_id)
    )
    ended_at = None
    if row is not None:
        if row.current_period_start and row.current_period_end:
            # Ranked below every invoice: it stands in only for a period whose invoice we lack.
            start = int(row.current_period_start.timestamp())
            spans.add((start, int(row.current_period_end.timestamp()), row.cycle, -1))
        if row.ended_at is not None:
            ended_at = int(row.ended_at.timestamp())
    return periods(spans, ended_at)


def _settle_invoice_months(
    invoice: Invoice,
    subscription_id: str,
    bought: dict[int, Fraction],
    weight: Fraction,
    started_by: int,
) -> int:
    """Write, for each month of the invoice that has begun (or was granted already), the
    difference between what it bought there and what the ledger holds for it."""
    held: dict[int, tuple[int, int]] = {}  # month → (sum, number of entries)
    rows = db.session.execute(
        select(CreditEntry.period_key, func.sum(CreditEntry.amount), func.count())
        .where(CreditEntry.invoice_id == invoice.id)
        .group_by(CreditEntry.period_key)
    )
    for period_key, total, count in rows:
        held[_month_of(period_key)] = (int(total), int(count))
    written = 0
    begun = {month for month in bought if month <= started_by}
    for month in sorted(begun | set(held)):
        total, count = held.get(month, (0, 0))
        difference = floor(weight * bought.get(month, Fraction(0))) - total
        if difference == 0:
            continue
        written += add_entry(
            user_id=invoice.user_id,
            amount=difference,
            grant_key=f"credits:{invoice.id}:{_at(month).isoformat()}:{count}",
            description=_describe(invoice, month, difference, first=count == 0),
            period_key=f"{subscription_id}:{_at(month).isoformat()}",
            subscription_id=subscription_id,
            invoice_id=invoice.id,
        )
    return written


def _month_of(period_key: str) -> int:
    moment = datetime.fromisoformat(period_key.partition(":")[2])
    if moment.tzinfo is None:  # a date-only key written before migration 0003
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _at(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _describe(invoice: Invoice, month: int, amount: int, *, first: bool) -> str:
    """The ledger line people read on the account page: what bought or took these credits."""
    when = _at(month).strftime("%b %Y")
    number = invoice.number or invoice.id
    plans = _plan_names(invoice.id)
    if first and amount > 0:
        if invoice.billing_reason in ("subscription_create", "subscription_cycle"):
            return f"{plans} plan: monthly credits ({when})"
        return f"Switch to {plans}: credits for {when}"
    if first:
        return f"Plan switch: unused part of {when} taken back"
    if invoice.status == "void":
        return f"Invoice {number} voided: credits for {when} taken back"
    if amount > 0:
        return f"Invoice {number}: credits for {when} restored"
    if invoice.amount_disputed:
        return f"Card dispute on invoice {number}: credits for {when} taken back"
    if invoice.amount_refunded:
        return f"Refund of invoice {number}: credits for {when} taken back"
    return f"Plan changed: credits for {when} taken back"


def _plan_names(invoice_id: str) -> str:
    # The catalog's name, not the published copy: ledger lines are records, and reading the copy
    # could write its first revision in another connection while this transaction holds SQLite.
    plan_ids = db.session.scalars(
        select(InvoiceLine.plan_id)
        .where(InvoiceLine.invoice_id == invoice_id, InvoiceLine.amount >= 0)
        .where(InvoiceLine.plan_id.is_not(None))
        .order_by(InvoiceLine.proration, InvoiceLine.id)
    ).first()
    if plan_ids is None:
        return "Plan"
    return get_catalog().plan(plan_ids).default_copy["name"]


# --- the scheduler -------------------------------------------------------------------------


def grant_due_credits(now: datetime | None = None) -> int:
    """Months that have begun since they were last settled (yearly plans), catching up every
    missed month; returns the number of ledger entries written."""
    now = now or utcnow()
    due = db.session.execute(
        select(Invoice.stripe_subscription_id, Invoice.user_id)
        .where(Invoice.next_credit_month_at <= now, Invoice.stripe_subscription_id.is_not(None))
        .distinct()
    ).all()
    written = 0
    for subscription_id, user_id in due:
        written += settle_subscription(subscription_id, user_id, now)
        db.session.commit()
    return written
