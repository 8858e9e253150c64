"""The sandbox's own tables (prefix `sandbox_`): Stripe's state as Stripe would keep it.

Every API object is stored whole as JSON, with the few columns the API filters on pulled out and
indexed. Only the sandbox reads or writes these tables, through its own sessions.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import Model


class SandboxObject(Model):
    """One Stripe object (product, price, customer, cs_, sub_, in_, bps_…) as its JSON."""

    __tablename__ = "sandbox_objects"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    object: Mapped[str] = mapped_column(String(60), index=True)
    created: Mapped[int] = mapped_column(BigInteger, index=True)
    # Sequence number so lists come back newest first even within one second.
    seq: Mapped[int] = mapped_column(BigInteger, index=True)
    customer: Mapped[str | None] = mapped_column(String(255), index=True)
    email: Mapped[str | None] = mapped_column(String(255), index=True)
    lookup_key: Mapped[str | None] = mapped_column(String(255), index=True)
    product: Mapped[str | None] = mapped_column(String(255), index=True)
    active: Mapped[bool | None] = mapped_column(Boolean)
    data: Mapped[str] = mapped_column(Text)


class SandboxEvent(Model):
    """An event, in the order it happened."""

    __tablename__ = "sandbox_events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(255), unique=True)
    type: Mapped[str] = mapped_column(String(100), index=True)
    created: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[str] = mapped_column(Text)


class SandboxDelivery(Model):
    """One event to one endpoint: the delivery log, and the queue of what is still to send."""

    __tablename__ = "sandbox_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(255), index=True)
    event_type: Mapped[str] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), index=True, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Wall-clock epoch seconds (not the test clock: retries happen in real time).
    next_attempt_at: Mapped[float] = mapped_column(Float, index=True)
    # A worker owns a delivery until this time; after it, another worker may take it over.
    locked_until: Mapped[float | None] = mapped_column(Float)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    delivered_at: Mapped[float | None] = mapped_column(Float)


class SandboxIdempotencyKey(Model):
    """A stored response for an Idempotency-Key, replayed when the same request comes again."""

    __tablename__ = "sandbox_idempotency_keys"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    created: Mapped[int] = mapped_column(BigInteger)


class SandboxSetting(Model):
    """Small shared state: the test clock's offset, fault switches, id counters."""

    __tablename__ = "sandbox_settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
