"""The credits ledger: credits follow the money.

Invariants (README, "Credits follow the money"), each enforced here and nowhere else:

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
- A deleted account is granted nothing more (what it bought and had not received by the
  deletion is forfeited with it); take-backs still apply, so it never holds more than paid for.

The API's vocabulary (API.md, "Credits"): every entry is one of three types, so the balance is
always `totalPurchased - totalUsed - totalTakenBack`:

- `purchase`: credits bought; the first entry of an invoice's month (plan credits), and later
  packs. `totalPurchased` sums them.
- `usage`: spent on generations (negative), or a failed generation's reversal (positive,
  webapp/billing/usage.py). `totalUsed` is minus their sum: net usage.
- `refund`: credits taken back after money went back (negative), or given back when it
  returned (positive: a won dispute, a failed refund). `totalTakenBack` is minus their sum.

Plan credits and pack credits never expire, so they form one pool: nothing needs to say which
goes first, and a usage debit takes from the single balance.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from math import floor

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.exc import SQLAlchemyError

from webapp.billing.credit_months import BilledLine, Period, month_credits, periods
from webapp.billing.invoices import billing_order, kept_share
from webapp.catalog import get_catalog
from webapp.database import insert_or_ignore, lock_row
from webapp.extensions import db
from webapp.models import CreditEntry, Invoice, InvoiceLine, Subscription, User
from webapp.models.base import utcnow
from webapp.models.billing import CREDIT_TYPES

log = logging.getLogger(__name__)


# The session's list of `LedgerWrite`s since its last commit or rollback.
LEDGER_WRITES = "credit_ledger_writes"


@dataclass(frozen=True)
class LedgerWrite:
    user_id: int
    amount: int
    invoice_id: str | None


@dataclass(frozen=True)
class CreditSummary:
    balance: int
    total_purchased: int  # every credit bought (plan months, packs)
    total_used: int  # net usage: spent on generations less reversals (positive)
    total_taken_back: int  # net taken back after money went back (positive)
    recent: list[CreditEntry]


def _sum_of(entry_type: str) -> ColumnElement[int]:
    return func.coalesce(func.sum(CreditEntry.amount).filter(CreditEntry.type == entry_type), 0)


def credit_summary(user_id: int, recent: int = 10) -> CreditSummary:
    """The balance is derived from the ledger, never stored on its own."""
    purchased, spent, taken_back = (
        int(value or 0)
        for value in db.session.execute(
            select(_sum_of("purchase"), _sum_of("usage"), _sum_of("refund")).where(
                CreditEntry.user_id == user_id
            )
        ).one()
    )
    entries = db.session.scalars(
        select(CreditEntry)
        .where(CreditEntry.user_id == user_id)
        .order_by(CreditEntry.created_at.desc(), CreditEntry.id.desc())
        .limit(recent)
    ).all()
    return CreditSummary(
        balance=purchased + spent + taken_back,
        total_purchased=purchased,
        total_used=-spent,
        total_taken_back=-taken_back,
        recent=list(entries),
    )


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
    entry_type: str | None = None,
    kind: str | None = None,
    site_id: str | None = None,
    balance_after: int | None = None,
) -> bool:
    """Add one ledger entry; False if `grant_key` is there already (a replay).

    `entry_type` (CREDIT_TYPES) defaults to a purchase for credits added and a refund for
    credits taken; `kind` to "grant" or "refund" likewise."""
    if amount == 0:
        return False
    if entry_type is not None and entry_type not in CREDIT_TYPES:
        raise ValueError(f"unknown credit entry type {entry_type!r}")
    added = insert_or_ignore(
        CreditEntry,
        {
            "user_id": user_id,
            "amount": amount,
            "type": entry_type or ("purchase" if amount > 0 else "refund"),
            "kind": kind or ("grant" if amount > 0 else "refund"),
            "site_id": site_id,
            "balance_after": balance_after,
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
        # Billing mail reads what this transaction wrote before it commits (the credits a refund
        # took back; a balance that fell below a member's threshold): see billing/emails.py.
        write = LedgerWrite(user_id, amount, invoice_id)
        db.session.info.setdefault(LEDGER_WRITES, []).append(write)
    return added


# --- settling: the ledger made equal to what the invoices bought -------------------------------


@dataclass(frozen=True)
class Cause:
    """Why a subscription is settled: words for the ledger lines one invoice's change writes."""

    invoice_id: str | None = None
    kind: str | None = None  # "refund", "dispute", "credit_note", "void" or None


def settle_subscription(
    subscription_id: str, user_id: int, now: datetime | None = None, cause: Cause | None = None
) -> int:
    """Bring every begun month of the subscription's invoices to what they bought.

    Returns the number of entries written. Takes the member's lock (callers that also write
    invoice or subscription rows take it first, so every writer locks in the same order:
    member, then subscription, then invoices).
    """
    lock_row(User, user_id)
    deleted = db.session.scalar(select(User.deleted_at).where(User.id == user_id)) is not None
    now_ts = int((now or utcnow()).timestamp())
    invoices = sorted(
        db.session.scalars(
            select(Invoice).where(Invoice.stripe_subscription_id == subscription_id)
        ),
        key=billing_order,
    )
    lines = _lines_by_invoice({invoice.id: rank for rank, invoice in enumerate(invoices)})
    known = _periods(subscription_id, invoices, lines)
    held = _held(subscription_id)
    written = 0
    for invoice in invoices:
        invoice_lines = [line for line, _plan in lines.get(invoice.id, [])]
        months = month_credits(invoice_lines, known)
        bought_cents = sum(line.amount for line in invoice_lines if line.buys)
        share = kept_share(invoice, bought_cents)
        # Month 0 of what an invoice bills starts when Stripe billed it, which a test clock may
        # put ahead of our clock: a paid invoice's own lines have begun, by definition.
        started_by = max([now_ts, *(line.start for line in invoice_lines)])
        targets = {
            month: floor(share * credits.bought - credits.given_back) if share else 0
            for month, credits in months.items()
        }
        begun = {month for month in months if month <= started_by}
        plan_name = _plan_name(lines.get(invoice.id, []))
        context = _Context(invoice, subscription_id, plan_name, cause or Cause(), deleted)
        for month in sorted(begun | held[invoice.id].keys()):
            total, count = held[invoice.id].get(month, (0, 0))
            written += _write(context, month, targets.get(month, 0) - total, count)
        upcoming = [month for month in months if month > started_by and share]
        invoice.next_credit_month_at = _at(min(upcoming)) if upcoming else None
    return written


@dataclass(frozen=True)
class _Context:
    invoice: Invoice
    subscription_id: str
    plan_name: str
    cause: Cause
    account_deleted: bool = False


def _write(context: _Context, month: int, difference: int, count: int) -> int:
    if difference == 0:
        return 0
    if difference > 0 and context.account_deleted:
        # A deleted account can spend nothing: what it had not been granted by the deletion is
        # forfeited with it (its owner was told so), however late the event; money that goes
        # back still takes back, so the ledger never holds more than stayed paid for.
        return 0
    invoice = context.invoice
    return add_entry(
        user_id=invoice.user_id,
        amount=difference,
        grant_key=f"credits:{invoice.id}:{_at(month).isoformat()}:{count}",
        description=_describe(context, month, difference, first=count == 0),
        period_key=f"{context.subscription_id}:{_at(month).isoformat()}",
        subscription_id=context.subscription_id,
        invoice_id=invoice.id,
        # The month's first grant is what was bought; every later entry of the month takes
        # back (or gives back) after money moved: a refund in the API's words.
        entry_type="purchase" if difference > 0 and count == 0 else "refund",
    )


def _lines_by_invoice(
    ranks: dict[str, int],
) -> dict[str, list[tuple[BilledLine, str | None]]]:
    """Each invoice's lines as the arithmetic sees them (with their invoice's billing rank), and
    the plan each is for."""
    grouped: dict[str, list[tuple[BilledLine, str | None]]] = defaultdict(list)
    if not ranks:
        return grouped
    rows = db.session.scalars(
        select(InvoiceLine).where(InvoiceLine.invoice_id.in_(list(ranks))).order_by(InvoiceLine.id)
    )
    for row in rows:
        line = BilledLine(
            id=row.id,
            credits_per_month=row.credits_per_month,
            amount=row.amount,
            proration=row.proration,
            start=int(row.period_start.timestamp()),
            end=int(row.period_end.timestamp()),
            cycle=row.cycle,
            rank=ranks[row.invoice_id],
        )
        grouped[row.invoice_id].append((line, row.plan_id))
    return grouped


def _periods(
    subscription_id: str,
    invoices: list[Invoice],
    lines: dict[str, list[tuple[BilledLine, str | None]]],
) -> list[Period]:
    """The subscription's periods: its full-price lines' spans and its current period, cut
    where a paid invoice credited their unused time, or where the subscription ended."""
    spans: dict[tuple[int, int], str | None] = {}
    row = db.session.scalar(
        select(Subscription).where(Subscription.stripe_subscription_id == subscription_id)
    )
    ended_at = None
    if row is not None:
        if row.current_period_start and row.current_period_end:
            # A stand-in for a period whose invoice we do not hold (yet).
            current = (
                int(row.current_period_start.timestamp()),
                int(row.current_period_end.timestamp()),
            )
            spans[current] = row.cycle
        if row.ended_at is not None:
            ended_at = int(row.ended_at.timestamp())
    credited = []
    for invoice in invoices:
        for line, _plan in lines.get(invoice.id, []):
            if not line.proration and line.credits_per_month and invoice.status != "void":
                spans[(line.start, line.end)] = line.cycle
            elif line.gives_back and invoice.status == "paid":
                credited.append(line)
    return periods(spans, ended_at=ended_at, credited=credited)


def _held(subscription_id: str) -> dict[str, dict[int, tuple[int, int]]]:
    """What the ledger holds for each (invoice, month) of the subscription: (sum, entries)."""
    held: dict[str, dict[int, tuple[int, int]]] = defaultdict(dict)
    rows = db.session.execute(
        select(
            CreditEntry.invoice_id,
            CreditEntry.period_key,
            func.sum(CreditEntry.amount),
            func.count(),
        )
        .where(
            CreditEntry.stripe_subscription_id == subscription_id,
            CreditEntry.invoice_id.is_not(None),
        )
        .group_by(CreditEntry.invoice_id, CreditEntry.period_key)
    )
    for invoice_id, period_key, total, count in rows:
        held[invoice_id][_month_of(period_key)] = (int(total), int(count))
    return held


def _month_of(period_key: str) -> int:
    moment = datetime.fromisoformat(period_key.partition(":")[2])
    if moment.tzinfo is None:  # a date-only key written before migration 0003
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _at(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _plan_name(lines: list[tuple[BilledLine, str | None]]) -> str:
    """The name of the plan an invoice charges for, as the catalog calls it.

    The catalog's name, not the published copy: ledger lines are records, and reading the copy
    could write its first revision in another connection while this transaction holds SQLite.
    """
    plans = get_catalog().plans
    for line, plan_id in sorted(lines, key=lambda item: item[0].proration):
        if line.buys and plan_id:
            plan = plans.get(plan_id)
            return plan.default_copy["name"] if plan else plan_id.capitalize()
    return "Plan"


def _describe(context: _Context, month: int, amount: int, *, first: bool) -> str:
    """The ledger line people read on the account page: what bought or took these credits."""
    invoice = context.invoice
    when = _at(month).strftime("%b %Y")
    number = invoice.number or invoice.id
    if first:
        if amount < 0:
            return f"Plan switch: unused part of {when} taken back"
        if invoice.billing_reason in ("subscription_create", "subscription_cycle"):
            return f"{context.plan_name} plan: monthly credits ({when})"
        return f"Switch to {context.plan_name}: credits for {when}"
    kind = context.cause.kind if context.cause.invoice_id == invoice.id else None
    taken = "taken back" if amount < 0 else "restored"
    if kind == "void":
        return f"Invoice {number} voided: credits for {when} {taken}"
    if kind == "dispute":
        verb = "Card dispute on" if amount < 0 else "Dispute won on"
        return f"{verb} invoice {number}: credits for {when} {taken}"
    if kind == "refund":
        return f"Refund of invoice {number}: credits for {when} {taken}"
    if kind == "credit_note":
        return f"Credit note on invoice {number}: credits for {when} {taken}"
    return f"Plan changed: credits for {when} {taken}"


# --- the scheduler -------------------------------------------------------------------------


@dataclass(frozen=True)
class GrantRun:
    written: int
    failed: list[str]  # subscriptions whose settling failed (logged; retried next run)


def grant_due_credits(now: datetime | None = None) -> GrantRun:
    """Months that have begun since they were last settled (yearly plans), catching up every
    missed month. One subscription's failure is logged and does not stop the others."""
    now = now or utcnow()
    due = db.session.execute(
        select(Invoice.stripe_subscription_id, Invoice.user_id)
        .where(Invoice.next_credit_month_at <= now, Invoice.stripe_subscription_id.is_not(None))
        .distinct()
        .order_by(Invoice.user_id, Invoice.stripe_subscription_id)
    ).all()
    written, failed = 0, []
    for subscription_id, user_id in due:
        try:
            written += settle_subscription(subscription_id, user_id, now)
            db.session.commit()
        except SQLAlchemyError:
            db.session.rollback()
            log.exception("monthly credits of %s failed; the next run retries", subscription_id)
            failed.append(subscription_id)
    return GrantRun(written, failed)
