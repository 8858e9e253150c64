"""Reading Stripe: its subscriptions and invoices, turned into the facts billing acts on.

Every event handler first reads what it needs here (network, no database writes), then applies
the facts in one transaction. Two rules of real Stripe shape this module:

- What a price is for comes from the Price's own metadata (`plan_id`, `cycle`, written by
  `stripe sync-catalog`), never from subscription or invoice-line metadata: a subscription's
  metadata names the plan bought at checkout forever, and invoice lines show the
  subscription's metadata (API reference, invoice line item `metadata`).
- Invoice lines name their price by id (`pricing.price_details.price`, unexpanded by default
  since 2025-03-31.basil); invoices show ten lines and page the rest; an invoice's payments,
  refunds and disputes hang off its InvoicePayments' PaymentIntents (basil removed
  `invoice.charge` and `charge.invoice`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from webapp.billing.base import (
    call_stripe,
    dig,
    from_timestamp,
    id_of,
    required_timestamp,
)
from webapp.billing.errors import required
from webapp.catalog import CYCLES, get_catalog
from webapp.models.base import utcnow
from webapp.stripe_gateway import get_gateway, plain_metadata

log = logging.getLogger(__name__)

# Dispute statuses in which the disputed money has left us (an inquiry, `warning_*`, takes
# nothing; a won or prevented dispute gives it back).
DISPUTE_WITHDRAWN = frozenset(
    {"needs_response", "under_review", "lost", "appeal_needs_response", "appeal_under_review"}
)
INTERVAL_CYCLES = {"month": "monthly", "year": "yearly"}


@dataclass(frozen=True)
class PriceFacts:
    id: str
    plan_id: str | None  # None: not one of our plans
    cycle: str | None
    amount_cents: int | None


@dataclass(frozen=True)
class PendingChange:
    """A switch scheduled for later through a subscription schedule."""

    schedule_id: str
    plan_id: str
    cycle: str
    at: datetime


@dataclass(frozen=True)
class SubscriptionFacts:
    id: str
    customer_id: str
    metadata: dict[str, str]
    status: str
    price: PriceFacts
    period_start: datetime | None
    period_end: datetime | None
    cancel_at_period_end: bool
    cancel_at: datetime | None
    ended_at: datetime | None
    created: datetime | None
    schedule_id: str | None
    pending: PendingChange | None
    # Set by duplicates.py on a subscription it cancelled: the id of the one kept.
    duplicate_of: str | None
    # When we began reading: a copy read earlier never overwrites one read later.
    fetched_at: datetime
    # Its free trial, if it began with one.
    trial_start: datetime | None = None
    trial_end: datetime | None = None


@dataclass(frozen=True)
class LineFacts:
    id: str
    subscription_id: str | None
    price: PriceFacts | None
    amount: int
    proration: bool
    period_start: datetime
    period_end: datetime
    quantity: int
    # A free trial's line: the plan's full period at no charge before any discount (Stripe
    # bills a trial as a $0 line of the plan's price). It buys no plan credits; a trial grants
    # its own allowance once per person (billing/trials.py).
    trial: bool = False


@dataclass(frozen=True)
class InvoiceFacts:
    id: str
    customer_id: str
    subscription_id: str | None
    status: str
    billing_reason: str | None
    currency: str
    total: int
    amount_paid: int
    amount_refunded: int
    amount_disputed: int
    number: str | None
    hosted_invoice_url: str | None
    invoice_pdf: str | None
    created: datetime
    lines: tuple[LineFacts, ...]
    fetched_at: datetime
    amount_due: int = 0  # what is still to pay (billing mail says it)
    # An open invoice whose payment waits for the cardholder's bank (3-D Secure): the member
    # must confirm it, not change their card.
    awaiting_authentication: bool = False
    # Billing history: before invoice-level discounts and tax, what they took off or added.
    subtotal: int = 0
    total_discount: int = 0
    total_tax: int = 0
    # A credit pack's invoice (payment-mode Checkout, `invoice_data.metadata`): the pack's id.
    pack_id: str | None = None


# --- prices ------------------------------------------------------------------------------------


def price_facts(price: Any) -> PriceFacts | None:
    """The plan and cycle a price is for; `price` is an id or a Price (network for an id)."""
    if price is None:
        return None
    if isinstance(price, str):
        price = call_stripe(get_gateway().retrieve_price, price)
    metadata = plain_metadata(price.metadata)
    plan_id, cycle = metadata.get("plan_id"), metadata.get("cycle")
    interval = dig(price, "recurring", "interval")
    cycle = cycle or INTERVAL_CYCLES.get(interval or "")
    if plan_id is None and price.lookup_key:
        # A price made before sync wrote metadata: its lookup key still says what it is for.
        plan_id, _, cycle = price.lookup_key.rpartition("_")
    if plan_id not in get_catalog().plans or cycle not in CYCLES:
        if not metadata.get("pack_id"):  # a credit pack's price is expected here, and buys no plan
            log.warning("price %s is not one of the catalog's plans", price.id)
        plan_id = cycle = None
    return PriceFacts(price.id, plan_id, cycle, price.unit_amount)


# --- subscriptions -----------------------------------------------------------------------------


def fetch_subscription_facts(subscription_id: str) -> SubscriptionFacts:
    fetched_at = utcnow()
    stripe_subscription = call_stripe(
        get_gateway().retrieve_subscription, subscription_id, expand=["schedule"]
    )
    return read_subscription(stripe_subscription, fetched_at)


def read_subscription(stripe_subscription: Any, fetched_at: datetime) -> SubscriptionFacts:
    """Facts of a subscription as Stripe showed it at `fetched_at` (schedule expanded or not)."""
    item = _plan_item(stripe_subscription)
    price = price_facts(item["price"])
    assert price is not None  # a subscription item always has a price
    metadata = plain_metadata(stripe_subscription.metadata)
    return SubscriptionFacts(
        id=stripe_subscription.id,
        customer_id=id_of(stripe_subscription.customer) or "",
        metadata=metadata,
        status=stripe_subscription.status,
        price=price,
        period_start=from_timestamp(dig(item, "current_period_start")),
        period_end=from_timestamp(dig(item, "current_period_end")),
        cancel_at_period_end=bool(stripe_subscription.cancel_at_period_end),
        cancel_at=from_timestamp(stripe_subscription.cancel_at),
        ended_at=from_timestamp(stripe_subscription.ended_at),
        created=from_timestamp(stripe_subscription.created),
        schedule_id=id_of(stripe_subscription.schedule),
        pending=_pending_change(stripe_subscription, item),
        duplicate_of=metadata.get("duplicate_of"),
        fetched_at=fetched_at,
        trial_start=from_timestamp(stripe_subscription.trial_start),
        trial_end=from_timestamp(stripe_subscription.trial_end),
    )


def _plan_item(stripe_subscription: Any) -> Any:
    """The subscription item that is one of our plans (the first item if none is)."""
    items = stripe_subscription["items"]["data"]
    for item in items:
        metadata = plain_metadata(dig(item, "price", "metadata"))
        if metadata.get("plan_id"):
            return item
    return items[0]


def _pending_change(stripe_subscription: Any, item: Any) -> PendingChange | None:
    """The phase of an attached schedule that starts at or after this period's end."""
    schedule = stripe_subscription.schedule
    if schedule is None or isinstance(schedule, str):
        return None  # no schedule (or not expanded: the caller did not ask)
    if schedule.status not in ("not_started", "active"):
        return None
    period_end = dig(item, "current_period_end") or 0
    for phase in schedule.phases:
        if phase.start_date < period_end or not phase["items"]:
            continue
        price = price_facts(phase["items"][0].price)
        if price is None or price.plan_id is None or price.id == dig(item, "price", "id"):
            continue
        return PendingChange(
            schedule.id,
            price.plan_id,
            price.cycle or "monthly",
            required_timestamp(phase.start_date),
        )
    return None


# --- invoices ------------------------------------------------------------------------------


def fetch_invoice_facts(invoice_id: str) -> InvoiceFacts:
    """An invoice, every line's plan, and the money that went back on it (refunds, disputes)."""
    fetched_at = utcnow()
    gateway = get_gateway()
    invoice = call_stripe(gateway.retrieve_invoice, invoice_id)
    lines = [_line_facts(line) for line in call_stripe(gateway.invoice_lines, invoice)]
    refunded, disputed = _money_back(invoice)
    # An invoice made by hand to collect a subscription's pending prorations has no
    # subscription of its own; its lines still name it.
    subscription_id = invoice_subscription_id(invoice) or next(
        (line.subscription_id for line in lines if line.subscription_id), None
    )
    return InvoiceFacts(
        id=invoice.id,
        customer_id=id_of(invoice.customer) or "",
        subscription_id=subscription_id,
        status=required(invoice.status, "an invoice's status"),
        billing_reason=invoice.billing_reason,
        currency=invoice.currency,
        total=invoice.total,
        amount_paid=invoice.amount_paid,
        amount_refunded=refunded,
        amount_disputed=disputed,
        number=invoice.number,
        hosted_invoice_url=invoice.hosted_invoice_url,
        invoice_pdf=invoice.invoice_pdf,
        created=required_timestamp(invoice.created),
        lines=tuple(lines),
        fetched_at=fetched_at,
        amount_due=invoice.amount_due or 0,
        awaiting_authentication=invoice.status == "open"
        and call_stripe(gateway.payment_awaits_authentication, invoice.id),
        subtotal=invoice.subtotal,
        total_discount=invoice_discount(invoice),
        total_tax=invoice_tax(invoice),
        pack_id=plain_metadata(invoice.metadata).get("pack_id") or None,
    )


def invoice_discount(invoice: Any) -> int:
    """Every discount on the invoice, its own and its lines' (Stripe sums both here)."""
    return sum(d.amount for d in (invoice.total_discount_amounts or []))


def invoice_tax(invoice: Any) -> int:
    """The invoice's tax. `total_taxes` replaced `total_tax_amounts` in API 2025-03-31 (basil);
    null when no tax was computed. Inclusive taxes are part of the subtotal already, exclusive
    ones are added on top: both are tax the customer paid."""
    return sum(t.amount for t in (invoice.total_taxes or []))


def invoice_subscription_id(invoice: Any) -> str | None:
    return id_of(dig(invoice, "parent", "subscription_details", "subscription"))


def _line_facts(line: Any) -> LineFacts:
    details = dig(line, "parent", "subscription_item_details") or dig(
        line, "parent", "invoice_item_details"
    )
    price = price_facts(dig(line, "pricing", "price_details", "price"))
    proration = bool(dig(details, "proration"))
    return LineFacts(
        id=line.id,
        subscription_id=id_of(dig(details, "subscription")),
        price=price,
        # What the line charged: its amount less its share of the invoice's discounts, plus the
        # tax on it (exclusive tax is charged on top, API 2025-03-31.basil `taxes`), so money
        # that goes back (a refund, tax included) is weighed against what was paid.
        amount=line.amount
        - sum(d.amount for d in (line.discount_amounts or []))
        + sum(t.amount for t in (line.taxes or []) if t.tax_behavior == "exclusive"),
        proration=proration,
        period_start=required_timestamp(line.period.start),
        period_end=required_timestamp(line.period.end),
        quantity=line.quantity or 1,
        # A 100%-off coupon also makes a $0 total, but its line keeps its amount (the discount
        # is in discount_amounts) and buys its credits; a trial's line itself is $0.
        trial=not proration and line.amount == 0 and bool(price and price.amount_cents),
    )


def _money_back(invoice: Any) -> tuple[int, int]:
    """(refunded or credited, disputed) cents of an invoice.

    Refunds come from its payments' charges; credit notes add what they credited without a
    refund (to the customer's balance, or settled outside Stripe), their refunds being among the
    charges' already. A note's `pre_payment_amount` was taken off before payment and never paid:
    it counts as money back, since the share kept is measured against what the lines charged
    (an invoice credited in full before payment is `paid` with nothing paid, and buys nothing).
    """
    if invoice.status != "paid":
        return 0, 0
    gateway = get_gateway()
    refunded = disputed = 0
    if invoice.amount_paid:
        for payment in call_stripe(gateway.invoice_payments, invoice.id):
            payment_intent = id_of(dig(payment, "payment", "payment_intent"))
            if payment.status != "paid" or not payment_intent:
                continue
            charges = call_stripe(gateway.charges_of, payment_intent)
            refunded += sum(charge.amount_refunded for charge in charges)
            if any(charge.disputed for charge in charges):
                disputes = call_stripe(gateway.disputes_of, payment_intent)
                disputed += sum(d.amount for d in disputes if d.status in DISPUTE_WITHDRAWN)
    if invoice.pre_payment_credit_notes_amount or invoice.post_payment_credit_notes_amount:
        for note in call_stripe(gateway.credit_notes_of, invoice.id):
            if note.status == "issued":
                credited = note.pre_payment_amount + note.post_payment_amount
                refunded += credited - sum(
                    r.amount_refunded for r in note.refunds or [] if _among_charges(r)
                )
    return refunded, disputed


def _among_charges(note_refund: Any) -> bool:
    """A credit note's refund that a charge's `amount_refunded` already shows: a Stripe Refund
    (`type` `refund`, or no type in older payloads), not one recorded on a PaymentRecord for a
    payment made outside Stripe (`payment_record_refund`, SDK `_credit_note.py`)."""
    kind = getattr(note_refund, "type", None) or (
        "payment_record_refund" if getattr(note_refund, "payment_record_refund", None) else "refund"
    )
    return kind == "refund"


def invoice_of_payment(payment_intent_id: str | None) -> str | None:
    """The invoice a payment (refunded or disputed) paid, if it paid one."""
    if not payment_intent_id:
        return None
    return call_stripe(get_gateway().invoice_for_payment_intent, payment_intent_id)
