"""Refresh tokens: log in once, then trade each refresh token for a new pair. The one place that
writes `refresh_token_families` and `refresh_tokens`.

The rules (README, "Log-in with refresh tokens"):

- **Families.** A log-in starts a family; every refresh token descends from that log-in's, one
  rotation at a time, and each access token issued with one carries the family in its `fam`
  claim. A family is *live* until it is revoked: by `POST /auth/logout`, by a reused token, or by
  anything that bumps the user's session version (log-out on the site, password change or
  reset, deactivation, deletion, a lowered role), whose code also marks it revoked here.
- **At most one live refresh token per family.** A refresh claims its token with one
  conditional UPDATE (`… WHERE revoked_at IS NULL`, rowcount 1) in the transaction that inserts
  the child, so two refreshes of one token cannot both succeed, on PostgreSQL or SQLite.
- **A reused token kills the family.** Presenting a token that was already exchanged means two
  parties hold the chain (a thief and the owner, or a client that lost a response): we cannot
  tell which is which, so the family is revoked and both must log in again. There is no grace
  period, so of two concurrent refreshes of one token exactly one wins and the other is treated
  as reuse (and revokes the winner's new token too).
- **A revoked family never yields tokens again**, and its access tokens are refused at their
  next request (`family_is_live`, checked beside the session version).
- **Stored hashed.** Only the SHA-256 of each secret is kept. A refresh token is 256 random bits,
  not a password a person chose, so there is nothing to guess or precompute: a slow salted hash
  (bcrypt, scrypt) would add nothing but CPU per refresh, and its salt would stop us from
  finding the row by its hash.
- **Lifetimes.** Access tokens last ACCESS_TOKEN_LIFETIME_SECONDS (15 minutes); each refresh
  token REFRESH_TOKEN_LIFETIME_SECONDS (7 days) from its own issue, so a client that refreshes
  at least weekly stays logged in until it logs out or the family is revoked.

Lock order, the same everywhere so writers wait rather than deadlock: the family row, then its
token rows.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import CursorResult, ScalarSelect, delete, insert, select, update

from webapp.api.tokens import AccessToken, issue_access_token
from webapp.extensions import db
from webapp.models import RefreshToken, RefreshTokenFamily, User
from webapp.models.base import utcnow

# token_urlsafe(32) is 43 characters; anything much longer is not one of ours.
MAX_REFRESH_TOKEN_LENGTH = 512


class InvalidRefreshToken(Exception):
    """Unknown, expired, or of a revoked family."""


class RefreshTokenReused(InvalidRefreshToken):
    """Already exchanged once: its family has just been revoked."""


@dataclass(frozen=True)
class TokenPair:
    access: AccessToken
    refresh: str


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _lifetime() -> timedelta:
    return timedelta(seconds=int(current_app.config["REFRESH_TOKEN_LIFETIME_SECONDS"]))


def _add_token(user_id: int, family_id: str, parent_id: int | None) -> str:
    """Insert a new refresh token of the family (no commit); returns its secret."""
    secret = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.execute(
        insert(RefreshToken).values(
            family_id=family_id,
            parent_id=parent_id,
            user_id=user_id,
            token_hash=hash_token(secret),
            created_at=now,
            expires_at=now + _lifetime(),
        )
    )
    return secret


def _pair(user: User, family_id: str, secret: str) -> TokenPair:
    return TokenPair(issue_access_token(user, family=family_id), secret)


def start_family(user: User) -> TokenPair:
    """After a successful log-in: a new family and its first token pair."""
    family_id = secrets.token_urlsafe(16)
    db.session.execute(
        insert(RefreshTokenFamily).values(
            id=family_id,
            user_id=user.id,
            session_version=user.session_version,
            created_at=utcnow(),
        )
    )
    secret = _add_token(user.id, family_id, parent_id=None)
    db.session.commit()
    return _pair(user, family_id, secret)


def _rowcount(result: object) -> int:
    assert isinstance(result, CursorResult)
    return result.rowcount


def rotate(secret: str) -> TokenPair:
    """Exchange a live refresh token for a new pair, revoking it; raises InvalidRefreshToken,
    or RefreshTokenReused (after revoking the family) for a token already exchanged."""
    digest = hash_token(secret)
    now = utcnow()
    # The first statement writes: it takes the family's row lock (PostgreSQL) or the database's
    # write lock (SQLite) before anything is read, so what follows cannot be overtaken.
    family_of_token = select(RefreshToken.family_id).where(RefreshToken.token_hash == digest)
    family_claimed = _rowcount(
        db.session.execute(
            update(RefreshTokenFamily)
            .where(RefreshTokenFamily.id.in_(family_of_token))
            .where(RefreshTokenFamily.revoked_at.is_(None))
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
    )
    token = db.session.execute(
        select(RefreshToken).where(RefreshToken.token_hash == digest)
    ).scalar_one_or_none()
    if token is None or not family_claimed:
        db.session.rollback()
        raise InvalidRefreshToken("unknown token, or its family was revoked")
    if token.revoked_at is None and token.expires_at <= now:
        db.session.rollback()
        raise InvalidRefreshToken("expired")
    token_claimed = _rowcount(
        db.session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == token.id)
            .where(RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        )
    )
    if not token_claimed:
        _revoke_family(token.family_id, "reuse")
        db.session.commit()
        raise RefreshTokenReused("token already exchanged; family revoked")
    family = db.session.get(RefreshTokenFamily, token.family_id)
    user = db.session.get(User, token.user_id)
    if family is None or user is None or not _still_current(user, family):
        _revoke_family(token.family_id, "sessions_ended")
        db.session.commit()
        raise InvalidRefreshToken("the user's sessions were ended since the log-in")
    child = _add_token(user.id, token.family_id, parent_id=token.id)
    db.session.commit()
    return _pair(user, token.family_id, child)


def _still_current(user: User, family: RefreshTokenFamily) -> bool:
    return (
        user.session_version == family.session_version
        and user.deactivated_at is None
        and user.deleted_at is None
    )


def _revoke_family(family_id: str | ScalarSelect[str], reason: str) -> None:
    """Revoke the family and mark its tokens (no commit). The family row is locked first."""
    now = utcnow()
    db.session.execute(
        update(RefreshTokenFamily)
        .where(RefreshTokenFamily.id == family_id)
        .where(RefreshTokenFamily.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )
    db.session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id)
        .where(RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )


def log_out(secret: str) -> None:
    """Revoke the family of this refresh token (live, exchanged or expired alike); nothing
    for an unknown token."""
    family = (
        select(RefreshToken.family_id)
        .where(RefreshToken.token_hash == hash_token(secret))
        .scalar_subquery()
    )
    # Written without reading first: on SQLite a transaction that read before writing cannot
    # wait for another writer, it fails.
    _revoke_family(family, "logout")
    db.session.commit()


def revoke_user_families(user_id: int) -> None:
    """Mark every family of the user revoked, in the caller's transaction (no commit): called
    wherever the session version is bumped, which alone already makes them unusable."""
    now = utcnow()
    db.session.execute(
        update(RefreshTokenFamily)
        .where(RefreshTokenFamily.user_id == user_id)
        .where(RefreshTokenFamily.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason="sessions_ended")
        .execution_options(synchronize_session=False)
    )
    db.session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id)
        .where(RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )


def family_is_live(family_id: str) -> bool:
    """Whether access tokens of this family are still accepted (its session version is checked
    by the caller, from the token's `ver` claim)."""
    revoked = db.session.execute(
        select(RefreshTokenFamily.revoked_at).where(RefreshTokenFamily.id == family_id)
    ).first()
    return revoked is not None and revoked[0] is None


def delete_expired_families() -> int:
    """Delete the families none of whose refresh tokens can still be used (every one past its
    expiry), with their tokens; how many families went. Commits.

    A whole family goes or none of it: a token's children cascade with it (`parent_id`), so
    deleting an expired parent alone would take its live child along. A family whose newest
    token expired has issued no access token for longer than an access token lives, so
    nothing that still works names it; a reused expired token is refused as unknown instead of
    as reused, which is the same answer to its holder.
    """
    now = utcnow()
    usable = (
        select(RefreshToken.id)
        .where(RefreshToken.family_id == RefreshTokenFamily.id, RefreshToken.expires_at > now)
        .exists()
    )
    # A family is written with its first token in one transaction; the age guard keeps one
    # being written now out of reach all the same.
    settled = RefreshTokenFamily.created_at < now - _lifetime()
    doomed = list(db.session.scalars(select(RefreshTokenFamily.id).where(settled, ~usable)))
    for start in range(0, len(doomed), 500):
        chunk = doomed[start : start + 500]
        # Children before parents needs no ordering: the whole family's rows go in one statement.
        db.session.execute(delete(RefreshToken).where(RefreshToken.family_id.in_(chunk)))
        db.session.execute(delete(RefreshTokenFamily).where(RefreshTokenFamily.id.in_(chunk)))
    db.session.commit()
    return len(doomed)
