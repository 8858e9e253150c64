"""The mail outbox: one row per message, written in the same transaction as its cause.

Only `webapp.mail` writes this table: `outbox.queue_mail` adds rows, `delivery` sends them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import Model
from webapp.models.base import UTCDateTime, utcnow


class MailStatus(StrEnum):
    PENDING = "pending"  # waiting for (another) delivery attempt
    SENT = "sent"  # accepted by the SMTP server
    KEPT = "kept"  # no SMTP configured: shown on the dev mailbox and logged instead
    FAILED = "failed"  # every attempt failed; `last_error` says why
    CANCELED = "canceled"  # its recipient unsubscribed from its kind before it was sent


class OutgoingMail(Model):
    """One message to send, with its delivery state."""

    __tablename__ = "outgoing_mail"
    # The worker's one query: due pending rows, oldest first.
    __table_args__ = (
        Index("ix_outgoing_mail_due", "status", "next_attempt_at"),
        # An unsubscribe cancels the member's pending mail of that kind.
        Index("ix_outgoing_mail_user_kind", "user_id", "kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(255))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str] = mapped_column(Text)
    # What caused the message (e.g. "evt_123:payment_failed"): the same cause never queues twice.
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    # What the message is ("payment_failed", "receipt", …) and for which member, when it is
    # one of theirs; extra headers (List-Unsubscribe) for the MIME message.
    kind: Mapped[str | None] = mapped_column(String(40))
    user_id: Mapped[int | None] = mapped_column(Integer)
    headers: Mapped[dict[str, str] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(10), default=MailStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
