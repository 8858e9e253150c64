"""People who can log in."""

from __future__ import annotations

import enum
from datetime import datetime

from flask import current_app
from flask_login import UserMixin
from sqlalchemy import String, false, true
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from webapp.extensions import Model
from webapp.models.base import UTCDateTime, utcnow


class Role(enum.StrEnum):
    USER = "user"
    MARKETING = "marketing"
    ADMIN = "admin"


def normalise_email(email: str) -> str:
    """The form of an address we store and compare: trimmed and lower-cased."""
    return email.strip().lower()


# flask_login has no type information (no stubs exist), so UserMixin is Any to mypy.
class User(UserMixin, Model):  # type: ignore[misc]
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Always stored normalised (see `normalise_email`), so the unique index is case-insensitive.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20), default=Role.USER.value)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # When the row last changed (every UPDATE SQLAlchemy writes sets it): the API's
    # `user.updatedAt`. Rows from before migration 0012 start at their `created_at`.
    updated_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime(), default=utcnow, onupdate=utcnow
    )
    # One Stripe customer per user, set once (compare-and-set in billing.ensure_customer).
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    # Bumped when Stripe deletes the customer, so the next one is created with a fresh
    # idempotency key instead of replaying the deleted customer.
    stripe_customer_generation: Mapped[int] = mapped_column(default=0)
    # Part of every session and token; bumping it (log-out, password change, deletion) ends
    # them all, on every worker, at their next request.
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")
    # When someone last tried to sign up with this address: sign-up answers alike whether or
    # not an account exists, so the owner is told here instead.
    signup_attempted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the owner proved the address is theirs (the link in the verification mail).
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set by `flask users deactivate`: the account can no longer log in or use the API.
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the owner deleted the account: personal data is anonymised, the ledger and invoices
    # stay as accounting records, and the row can never log in again.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Billing mail (webapp/billing/emails.py): the balance under which "credits low" is sent
    # (None: the site's CREDITS_LOW_THRESHOLD), and whether it was sent since the balance last
    # stood at or above it (so it is sent once per crossing).
    credits_low_threshold: Mapped[int | None] = mapped_column()
    # Set instead: the threshold is this percentage of the live plan's monthly credits.
    credits_low_percent: Mapped[int | None] = mapped_column()
    credits_low_notified: Mapped[bool] = mapped_column(default=False, server_default=false())
    # The non-essential billing mails, each with its one-click unsubscribe (essential ones,
    # such as a failed payment, are always sent).
    wants_receipt_mail: Mapped[bool] = mapped_column(default=True, server_default=true())
    wants_credits_low_mail: Mapped[bool] = mapped_column(default=True, server_default=true())

    def set_password(self, password: str) -> None:
        # scrypt, a memory-hard KDF, in every configuration but the test suite's (see Config).
        method = current_app.config["PASSWORD_HASH_METHOD"]
        self.password_hash = generate_password_hash(password, method=method)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    def get_id(self) -> str:
        """What Flask-Login stores in the session: the id and the session version it was issued
        at (parsed back by `webapp.auth.sessions.parse_session_id`)."""
        return f"{self.id}:{self.session_version}"

    @property
    def is_editor(self) -> bool:
        return self.role in (Role.MARKETING.value, Role.ADMIN.value)

    def __repr__(self) -> str:
        return f"<User {self.id} {self.role}>"
