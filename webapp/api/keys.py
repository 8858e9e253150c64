"""Creating, listing, changing, revoking and checking API keys: the one writer of `api_keys`.

A key is `llmgen_` + 43 URL-safe characters (32 random bytes). It is shown once, when created;
we keep its SHA-256 and its first characters only. People and the API name a key by its public
id (`key_…`, random), never by its row id.

A key has one scope: `read` keys may only read (GET), `full` keys may do whatever the `/api`
endpoints offer. It may have an expiry (at most MAX_KEY_LIFETIME ahead); an expired key is
refused with `api_key_expired` and stays listed (inactive) until its owner revokes it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, cast

from sqlalchemy import CursorResult, Result, or_, select, update

from webapp.database import lock_row
from webapp.extensions import db
from webapp.models import ApiKey, User
from webapp.models.api_key import SCOPE_FULL, SCOPES
from webapp.models.base import utcnow

KEY_PREFIX = "llmgen_"
PUBLIC_ID_PREFIX = "key_"
DISPLAY_PREFIX_LENGTH = len(KEY_PREFIX) + 6
MAX_ACTIVE_KEYS_PER_USER = 20
MAX_KEY_LENGTH = 200
MAX_NAME_LENGTH = 60
MAX_DESCRIPTION_LENGTH = 500
# A key that never expires is allowed; one with an expiry may run for at most a year, so a
# forgotten key with a date does not live on for decades.
MAX_KEY_LIFETIME = timedelta(days=365)
# Recording every single use would turn each API read into a write (and wake every worker's
# member cache); a minute's precision is what "last used" needs. The update is conditional,
# so however many workers see the key in the same minute, one of them writes.
LAST_USED_PRECISION = timedelta(minutes=1)
# Methods that only read: all a `read` key may use.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class KeyRequestRefused(Exception):
    """A request about keys we refuse: `code` is the API's stable error code."""

    code = "validation_error"


class TooManyKeys(KeyRequestRefused):
    """The user already has MAX_ACTIVE_KEYS_PER_USER keys that are not revoked."""

    code = "too_many_api_keys"


class EmailNotVerified(KeyRequestRefused):
    """The user has not verified their email address yet (README "Accounts": an unverified
    account may pay and use credits on the site, but not create API keys)."""

    code = "email_not_verified"


class InvalidExpiry(KeyRequestRefused):
    """The expiry is not in the future, or more than MAX_KEY_LIFETIME ahead."""

    code = "invalid_expiry"


class KeyExpired(Exception):
    """A request came with a key past its `expires_at`."""

    code = "api_key_expired"


@dataclass(frozen=True)
class NewKey:
    """A freshly created key: `secret` is the only time the full key exists outside the client."""

    key: ApiKey
    secret: str


@dataclass(frozen=True)
class KeyHolder:
    """Who a request's key belongs to, and the key (for its scope)."""

    user: User
    key: ApiKey


class _Unchanged:
    """The value of an update's field that was not given."""


UNCHANGED: Final = _Unchanged()


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def looks_like_api_key(credential: str) -> bool:
    return credential.startswith(KEY_PREFIX)


def new_public_id() -> str:
    return PUBLIC_ID_PREFIX + secrets.token_urlsafe(12)


def check_expiry(expires_at: datetime | None, now: datetime | None = None) -> None:
    """Raise InvalidExpiry unless `expires_at` is None or in (now, now + MAX_KEY_LIFETIME]."""
    if expires_at is None:
        return
    now = now or utcnow()
    if expires_at <= now:
        raise InvalidExpiry("The expiry must be in the future.")
    if expires_at > now + MAX_KEY_LIFETIME:
        raise InvalidExpiry(
            f"The expiry can be at most {MAX_KEY_LIFETIME.days} days ahead; "
            "leave it out for a key that does not expire."
        )


def allows(key: ApiKey, method: str) -> bool:
    """Whether the key's scope covers a request with this HTTP method."""
    return key.scope == SCOPE_FULL or method.upper() in READ_METHODS


def create_key(
    user_id: int,
    name: str,
    *,
    description: str | None = None,
    scope: str = SCOPE_FULL,
    expires_at: datetime | None = None,
) -> NewKey:
    """Make and store a new key for the user; raises TooManyKeys past the limit,
    EmailNotVerified before the user has verified their address, InvalidExpiry."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")  # callers validate: a bug if reached
    check_expiry(expires_at)
    # Count and insert with the user's row locked: concurrent requests take turns, so the
    # limit holds (without the lock, each counted 19 and all of them inserted).
    lock_row(User, user_id)
    if db.session.scalar(select(User.email_verified_at).where(User.id == user_id)) is None:
        db.session.rollback()
        raise EmailNotVerified(
            "Verify your email address before creating API keys: open the link we mailed you, "
            "or send a new one from the banner at the top of the page."
        )
    if len(unrevoked_keys(user_id)) >= MAX_ACTIVE_KEYS_PER_USER:
        db.session.rollback()
        raise TooManyKeys(
            f"You can have at most {MAX_ACTIVE_KEYS_PER_USER} API keys (expired ones count "
            "until you revoke them)."
        )
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        public_id=new_public_id(),
        user_id=user_id,
        name=name,
        description=description or None,
        scope=scope,
        expires_at=expires_at,
        prefix=secret[:DISPLAY_PREFIX_LENGTH],
        key_hash=hash_key(secret),
    )
    db.session.add(key)
    db.session.commit()
    return NewKey(key, secret)


def unrevoked_keys(user_id: int) -> list[ApiKey]:
    """The user's keys not revoked (expired ones included, shown inactive), newest first."""
    return list(
        db.session.scalars(
            select(ApiKey)
            .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
            .order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
        )
    )


def _own_key(user_id: int, public_id: str) -> ApiKey | None:
    """One of the user's unrevoked keys; None for someone else's, a revoked or an unknown id
    (the same answer, so ids of other people's keys cannot be confirmed)."""
    if not public_id.startswith(PUBLIC_ID_PREFIX) or len(public_id) > 32:
        return None
    return db.session.scalar(
        select(ApiKey).where(
            ApiKey.public_id == public_id,
            ApiKey.user_id == user_id,
            ApiKey.revoked_at.is_(None),
        )
    )


def update_key(
    user_id: int,
    public_id: str,
    *,
    name: str | _Unchanged = UNCHANGED,
    description: str | None | _Unchanged = UNCHANGED,
    scope: str | _Unchanged = UNCHANGED,
) -> ApiKey | None:
    """Change a key's name, description or scope; None if the user has no such key."""
    key = _own_key(user_id, public_id)
    if key is None:
        db.session.rollback()
        return None
    if not isinstance(name, _Unchanged):
        key.name = name
    if not isinstance(description, _Unchanged):
        key.description = description or None
    if not isinstance(scope, _Unchanged):
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}")
        key.scope = scope
    db.session.commit()
    return key


def revoke_key(user_id: int, public_id: str) -> ApiKey | None:
    """Revoke one of the user's own keys; the key, or None if they have no such key."""
    key = _own_key(user_id, public_id)
    if key is None:
        db.session.rollback()
        return None
    result = db.session.execute(
        update(ApiKey)
        .where(ApiKey.id == key.id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    db.session.commit()
    # A concurrent revoke of the same key won: the key is gone all the same, but only one
    # caller is told they revoked it.
    return key if _rowcount(result) == 1 else None


def revoke_all_keys(user_id: int) -> int:
    """Revoke every active key of the user, in the caller's transaction (which commits it);
    returns how many were revoked. For an account being deactivated."""
    result = db.session.execute(
        update(ApiKey)
        .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return _rowcount(result)


def _rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE changed: its result is a CursorResult, which Session.execute's type
    (SQLAlchemy 2.0) does not say."""
    return cast("CursorResult[Any]", result).rowcount


def holder_of_key(secret: str) -> KeyHolder | None:
    """The owner of a working key and the key, recording its use; None for unknown or revoked
    keys (or a deactivated owner); raises KeyExpired for a key past its expiry."""
    if not looks_like_api_key(secret) or len(secret) > MAX_KEY_LENGTH:
        return None
    digest = hash_key(secret)
    key = db.session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
    # The lookup is by hash, so the database never compares the secret itself; this compare is
    # constant-time all the same, so no code path's timing depends on secret material.
    if key is None or not hmac.compare_digest(key.key_hash, digest) or key.revoked_at is not None:
        return None
    user = db.session.get(User, key.user_id)
    # Deactivation revokes the keys too; this also covers a key made in a race with it.
    if user is None or user.deactivated_at is not None:
        return None
    now = utcnow()
    # Read from the database on every request, so an expiry (like a revocation) holds at once
    # in every worker.
    if key.is_expired(now):
        raise KeyExpired("The API key has expired. Create a new one on the account page.")
    _record_use(key, now)
    return KeyHolder(user, key)


def _record_use(key: ApiKey, now: datetime) -> None:
    stale = now - LAST_USED_PRECISION
    if key.last_used_at is not None and key.last_used_at > stale:
        return
    db.session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key.id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= stale),
        )
        .values(last_used_at=now)
    )
    db.session.commit()
