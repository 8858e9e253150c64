"""Creating, listing, revoking and checking API keys. The one place that writes `api_keys`.

A key is `llmgen_` + 43 URL-safe characters (32 random bytes). It is shown once, when created;
we keep its SHA-256 and its first characters only.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update

from webapp.database import lock_row
from webapp.extensions import db
from webapp.models import ApiKey, User
from webapp.models.base import utcnow

KEY_PREFIX = "llmgen_"
DISPLAY_PREFIX_LENGTH = len(KEY_PREFIX) + 6
MAX_ACTIVE_KEYS_PER_USER = 20
MAX_KEY_LENGTH = 200
# Recording every single use would turn each API read into a write; a minute's precision is
# what the "last used" column on the account page needs.
LAST_USED_PRECISION = timedelta(minutes=1)


class TooManyKeys(Exception):
    """The user already has MAX_ACTIVE_KEYS_PER_USER active keys."""


class EmailNotVerified(Exception):
    """The user has not verified their email address yet (README "Accounts": an unverified
    account may pay and use credits on the site, but not create API keys)."""

    code = "email_not_verified"  # the JSON API's error code, should it create keys


@dataclass(frozen=True)
class NewKey:
    """A freshly created key: `secret` is the only time the full key exists outside the client."""

    key: ApiKey
    secret: str


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def looks_like_api_key(credential: str) -> bool:
    return credential.startswith(KEY_PREFIX)


def create_key(user_id: int, name: str) -> NewKey:
    """Make and store a new key for the user; raises TooManyKeys past the limit and
    EmailNotVerified before the user has verified their address."""
    # Count and insert with the user's row locked: concurrent requests take turns, so the
    # limit holds (without the lock, each counted 19 and all of them inserted).
    lock_row(User, user_id)
    if db.session.scalar(select(User.email_verified_at).where(User.id == user_id)) is None:
        db.session.rollback()
        raise EmailNotVerified(
            "Verify your email address before creating API keys: open the link we mailed you, "
            "or send a new one from the banner at the top of the page."
        )
    if len(active_keys(user_id)) >= MAX_ACTIVE_KEYS_PER_USER:
        db.session.rollback()
        raise TooManyKeys(f"You can have at most {MAX_ACTIVE_KEYS_PER_USER} active API keys.")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        user_id=user_id,
        name=name,
        prefix=secret[:DISPLAY_PREFIX_LENGTH],
        key_hash=hash_key(secret),
    )
    db.session.add(key)
    db.session.commit()
    return NewKey(key, secret)


def active_keys(user_id: int) -> list[ApiKey]:
    """The user's keys that still work, newest first."""
    return list(
        db.session.scalars(
            select(ApiKey)
            .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
            .order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
        )
    )


def revoke_key(user_id: int, key_id: int) -> bool:
    """Revoke one of the user's own keys; False if they have no such active key."""
    result = db.session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    db.session.commit()
    return result.rowcount == 1


def revoke_all_keys(user_id: int) -> int:
    """Revoke every active key of the user, in the caller's transaction (which commits it);
    returns how many were revoked. For an account being deactivated."""
    result = db.session.execute(
        update(ApiKey)
        .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return result.rowcount


def user_for_key(secret: str) -> User | None:
    """The owner of an active key, recording its use; None for unknown or revoked keys."""
    if not looks_like_api_key(secret) or len(secret) > MAX_KEY_LENGTH:
        return None
    digest = hash_key(secret)
    key = db.session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
    # The lookup is by hash, so the database never compares the secret itself; this compare is
    # constant-time all the same, so no code path's timing depends on secret material.
    if key is None or not hmac.compare_digest(key.key_hash, digest) or not key.is_active:
        return None
    user = db.session.get(User, key.user_id)
    # Deactivation revokes the keys too; this also covers a key made in a race with it.
    if user is None or user.deactivated_at is not None:
        return None
    _record_use(key)
    return user


def _record_use(key: ApiKey) -> None:
    now = utcnow()
    if key.last_used_at is not None and now - key.last_used_at < LAST_USED_PRECISION:
        return
    db.session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
    db.session.commit()
