"""Refresh tokens of the JSON API's log-in (`POST /auth/login`), in families.

Only `webapp.api.refresh_tokens` writes these tables (see STYLE.md, "commits happen in few
places"). The rules they keep are in that module's docstring.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import Model
from webapp.models.base import UTCDateTime, utcnow


class RefreshTokenFamily(Model):
    """Every refresh token descended from one log-in, and the access tokens issued with them.

    The family row is what decides whether any of them still works: revoking it (log-out, a
    reused token, a session-version bump) ends them all at once, whatever their own rows say.
    """

    __tablename__ = "refresh_token_families"

    # Random and opaque: access tokens carry it in their `fam` claim, which anyone can read.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # The user's session version at the log-in: a later bump (log-out everywhere, password
    # change, deactivation, deletion) makes the family unusable even before it is marked revoked.
    session_version: Mapped[int] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # "logout", "reuse" or "sessions_ended": for whoever reads the table after an incident.
    revoked_reason: Mapped[str | None] = mapped_column(String(20))


class RefreshToken(Model):
    """One refresh token. Only the SHA-256 of the secret is stored (see `refresh_tokens`)."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    family_id: Mapped[str] = mapped_column(
        ForeignKey("refresh_token_families.id", ondelete="CASCADE"), index=True
    )
    # The token this one was exchanged for (None for the one issued at the log-in).
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("refresh_tokens.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Set when the token is exchanged (rotation) or its family is revoked.
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
