"""API keys: long-lived credentials for third-party integrations of the JSON API.

Only `webapp.api.keys` writes this table (see STYLE.md, "commits happen in few places").
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import db
from webapp.models.base import UTCDateTime, utcnow


class ApiKey(db.Model):
    """One API key. The secret itself is never stored: only its SHA-256 and a display prefix.

    SHA-256 without a salt is enough here because the secret is 256 bits of randomness, not a
    password a person chose: there is nothing to guess or precompute.
    """

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    # The first characters of the key ("llmgen_AbCd"), so people can tell their keys apart.
    prefix: Mapped[str] = mapped_column(String(16))
    # Hex SHA-256 of the whole key; requests are looked up by it.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def __repr__(self) -> str:
        return f"<ApiKey {self.id} {self.prefix}… user={self.user_id}>"
