"""Subscriptions, checkout sessions, invoices, the credits ledger and the webhook event ledger.

Only `webapp.billing` writes these tables (see STYLE.md, "commits happen in few places").
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import Model
from webapp.models.base import UTCDateTime, utcnow


class Subscription(Model):
    """Our copy of a Stripe subscription, kept current by webhooks."""

    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    stripe_subscription_id: Mapped[str] = mapped_column(String(255), unique=True)
    stripe_customer_id: Mapped[str] = mapped_column(String(255), index=True)
    stripe_price_id: Mapped[str] = mapped_column(String(255))
    plan_id: Mapped[str] = mapped_column(String(40))
    cycle: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(30))
    current_period_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    current_period_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_at_period_end: Mapped[bool] = mapped_column(default=False)
    # When a scheduled cancellation ends it (flexible billing mode sets this without
    # cancel_at_period_end); None when it is not set to end.
    cancel_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A change scheduled for later (a downgrade at the period end, through a Stripe
    # subscription schedule): the plan and cycle it switches to, and when.
    schedule_id: Mapped[str | None] = mapped_column(String(255))
    pending_plan_id: Mapped[str | None] = mapped_column(String(40))
    pending_cycle: Mapped[str | None] = mapped_column(String(10))
    pending_change_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set when this subscription was cancelled and refunded because the user already had a live
    # one (two checkouts paid at once): the Stripe id of the one kept.
    duplicate_of: Mapped[str | None] = mapped_column(String(255))
    # Its free trial, if it began with one (Stripe's trial_start/trial_end): the account page
    # says "Trial ends DATE", and whoever had a trial is offered no second (billing/trials.py).
    trial_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    trial_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the subscription went past_due; starts the grace period.
    past_due_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the Stripe read this row holds began: an older read never overwrites it.
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    @property
    def trial_ended_unpaid(self) -> bool:
        """A free trial that ended before any payment: cancelled by its end (no card, or by
        the member), or paused at its end."""
        if self.trial_end is None:
            return False
        if self.status == "paused":
            return True
        return self.status == "canceled" and (
            self.ended_at is not None and self.ended_at <= self.trial_end
        )

    @property
    def ends_at(self) -> datetime | None:
        """When the subscription is set to end: `cancel_at`, or the period end if cancelling."""
        if self.cancel_at is not None:
            return self.cancel_at
        return self.current_period_end if self.cancel_at_period_end else None


class CheckoutSession(Model):
    """A Stripe Checkout Session we created; at most one open per user."""

    __tablename__ = "checkout_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    stripe_session_id: Mapped[str] = mapped_column(String(255), unique=True)
    plan_id: Mapped[str] = mapped_column(String(40))
    cycle: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20), default="open")
    url: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # When we first saw the completed session say `consent.terms_of_service = "accepted"`
    # (Stripe records no time of its own; the buyer ticked the box moments before paying).
    # Null when the session did not ask for consent (the `consent_collection` checkout option).
    terms_accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Invoice(Model):
    """Our record of a Stripe invoice of a subscription: what was paid, and what went back.

    Kept current from invoice, refund and dispute events (re-read from Stripe each time); the
    credits an invoice bought are derived from it and its lines (see webapp/billing/credits.py).
    """

    __tablename__ = "invoices"
    # The billing history reads a member's invoices newest first, a page at a time.
    __table_args__ = (Index("ix_invoices_user_created", "user_id", "created"),)

    id: Mapped[str] = mapped_column(String(255), primary_key=True)  # Stripe's in_ id
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255), index=True)
    status: Mapped[str] = mapped_column(String(20))  # draft | open | paid | uncollectible | void
    billing_reason: Mapped[str | None] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(3))
    # Cents. `total` is what the invoice is worth; refunds and disputes are what went back.
    total: Mapped[int] = mapped_column(Integer)
    # Billing history: the total is the subtotal less discounts plus exclusive tax. None on rows
    # stored before migration 0009 until their invoice's next event re-reads them.
    subtotal: Mapped[int | None] = mapped_column(Integer)
    total_discount: Mapped[int | None] = mapped_column(Integer)
    total_tax: Mapped[int | None] = mapped_column(Integer)
    amount_paid: Mapped[int] = mapped_column(Integer, default=0)
    amount_refunded: Mapped[int] = mapped_column(Integer, default=0)
    # Taken by open or lost card disputes (a won dispute gives it back).
    amount_disputed: Mapped[int] = mapped_column(Integer, default=0)
    number: Mapped[str | None] = mapped_column(String(100))
    hosted_invoice_url: Mapped[str | None] = mapped_column(Text)
    invoice_pdf: Mapped[str | None] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(UTCDateTime())  # Stripe's, not ours
    # When the next month of credits this invoice paid for begins (yearly plans): the
    # scheduler's queue. None when every month it covers has been settled.
    next_credit_month_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    # When the Stripe read this row holds began: an older read never overwrites it.
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class InvoiceLine(Model):
    """One line of an invoice that bought (or gave back) time on a plan."""

    __tablename__ = "invoice_lines"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)  # Stripe's il_ id
    invoice_id: Mapped[str] = mapped_column(
        ForeignKey("invoices.id", ondelete="CASCADE"), index=True
    )
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255), index=True)
    stripe_price_id: Mapped[str | None] = mapped_column(String(255))
    # From the Price's own metadata (written by catalog sync), never from line metadata.
    plan_id: Mapped[str | None] = mapped_column(String(40))
    cycle: Mapped[str | None] = mapped_column(String(10))
    # The plan's monthly credits when the line was billed (0 for a line that is not a plan).
    credits_per_month: Mapped[int] = mapped_column(Integer, default=0)
    # Cents charged, after the line's discounts; negative for unused time credited back.
    amount: Mapped[int] = mapped_column(Integer)
    proration: Mapped[bool] = mapped_column(Boolean, default=False)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    period_end: Mapped[datetime] = mapped_column(UTCDateTime())


# What the API calls each ledger entry (API.md, "Credits"): credits bought (plan months, trial,
# packs), credits spent on generations (and their reversals), credits taken back after money
# went back (and given back when it returns). See webapp/billing/credits.py.
CREDIT_TYPES = ("purchase", "usage", "refund")


def new_transaction_id() -> str:
    """An opaque, random, public id for a ledger entry (never the database id)."""
    return "txn_" + secrets.token_hex(12)


class CreditEntry(Model):
    """One row of the credits ledger: a grant (+), a use (-) or credits taken back (-).

    `grant_key` names what caused the entry and is unique, so a replayed event can never grant
    or take twice (usage: `usage:<idempotency key>`, its reversal `usage-reversal:<key>`).
    Entries an invoice caused carry its id and the month (`period_key`) they are for; see
    webapp/billing/credits.py for the rules. `type` is one of CREDIT_TYPES; `kind` is finer and
    internal (grant, refund, usage, reversal).
    """

    __tablename__ = "credit_entries"
    # The credit history reads a member's entries newest first, a page at a time, by type too.
    __table_args__ = (
        Index("ix_credit_entries_user_created", "user_id", "created_at"),
        Index("ix_credit_entries_user_type_created", "user_id", "type", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    txn_id: Mapped[str] = mapped_column(String(40), unique=True, default=new_transaction_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    amount: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(10))
    kind: Mapped[str] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(String(255))
    # Usage only: the site a generation was for, and the balance right after the entry (so a
    # replayed request answers exactly what the first one did).
    site_id: Mapped[str | None] = mapped_column(String(255))
    balance_after: Mapped[int | None] = mapped_column(Integer)
    grant_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    # The subscription month an entry belongs to ("sub_…:2026-01-15T09:30:00+00:00").
    period_key: Mapped[str | None] = mapped_column(String(255), index=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255))
    invoice_id: Mapped[str | None] = mapped_column(String(255), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookEvent(Model):
    """The event ledger: every Stripe event we accepted, processed at most once."""

    __tablename__ = "webhook_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)  # Stripe's evt_ id
    type: Mapped[str] = mapped_column(String(100))
    created: Mapped[int] = mapped_column(BigInteger)  # Stripe's `created`, Unix seconds
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    # received (waiting for a worker) | processed | ignored | failed | replaying
    status: Mapped[str] = mapped_column(String(20), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # When a relay or the sweeper last handed it to the queue; NULL: not handed yet (recorded,
    # delivered again or released), which a relay's next round takes.
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A `failed` event's next retry by a worker; NULL once retries are spent (`flask webhooks
    # replay`). Past it by the sweep age, the retry was lost and the sweeper queues the event.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Lease(Model):
    """A named lock with an expiry, held across Stripe calls without a database transaction.

    One checkout start per user at a time (`checkout:<user id>`); a holder that dies releases
    its lease by letting it expire.
    """

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
