"""Subscription state, checkout sessions, the credits ledger and the webhook event ledger.

Only `webapp.billing` writes these tables (see STYLE.md, "commits happen in few places").
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import db
from webapp.models.base import UTCDateTime, utcnow


class Subscription(db.Model):
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
    # When the subscription went past_due; starts the grace period.
    past_due_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class CheckoutSession(db.Model):
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


class CreditEntry(db.Model):
    """One row of the credits ledger: a grant (+), a use (-) or an adjustment (±).

    `grant_key` names what caused a grant (an invoice, a subscription month, an upgrade), and is
    unique, so a replayed event can never grant twice.
    """

    __tablename__ = "credit_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    amount: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(String(255))
    grant_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    # The subscription month a grant belongs to ("sub_…:2026-01-15"), for upgrade top-ups.
    period_key: Mapped[str | None] = mapped_column(String(255), index=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookEvent(db.Model):
    """The event ledger: every Stripe event we accepted, processed at most once."""

    __tablename__ = "webhook_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)  # Stripe's evt_ id
    type: Mapped[str] = mapped_column(String(100))
    created: Mapped[int] = mapped_column(BigInteger)  # Stripe's `created`, Unix seconds
    payload: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), index=True)  # processed | ignored | failed
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
