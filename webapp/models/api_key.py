"""API keys: long-lived credentials for third-party integrations of the JSON API.

Only `webapp.api.keys` writes this table (see STYLE.md, "commits happen in few places").
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, text
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import Model
from webapp.models.base import UTCDateTime, utcnow

# What a key may do (README "API keys"): `read` keys may only read (GET), `full` keys may also
# start checkouts and open the portal. Keys made before scopes existed are `full`.
SCOPE_READ = "read"
SCOPE_FULL = "full"
SCOPES = (SCOPE_READ, SCOPE_FULL)


class ApiKey(Model):
    """One API key. The secret itself is never stored: only its SHA-256 and a display prefix.

    SHA-256 without a salt is enough here because the secret is 256 bits of randomness, not a
    password a person chose: there is nothing to guess or precompute.
    """

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The id the API and the account page show ("key_…"): random, so it reveals neither how many
    # keys exist nor the ids of other people's keys.
    public_id: Mapped[str] = mapped_column(String(32), unique=True, index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    description: Mapped[str | None] = mapped_column(String(500))
    scope: Mapped[str] = mapped_column(String(8), server_default=text("'full'"))
    # The first characters of the key ("llmgen_AbCd"), so people can tell their keys apart.
    prefix: Mapped[str] = mapped_column(String(16))
    # Hex SHA-256 of the whole key; requests are looked up by it.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Optional: after this moment the key is refused (`api_key_expired`).
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    @property
    def is_active(self) -> bool:
        """Neither revoked nor expired: requests with it are answered."""
        return self.revoked_at is None and not self.is_expired(utcnow())

    @property
    def scopes(self) -> list[str]:
        return [self.scope]

    def __repr__(self) -> str:
        return f"<ApiKey {self.public_id} {self.prefix}… user={self.user_id}>"
