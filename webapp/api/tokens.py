"""JWT access tokens for the API: HS256 with the API's own secret, short-lived.

Only HS256 is ever accepted when decoding. Naming the algorithm list explicitly is what defeats
`alg: none` and algorithm-confusion tokens; PyJWT refuses anything not in `algorithms`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from flask import current_app

from webapp.models import User

ALGORITHM = "HS256"
# `ver`: the user's session version when the token was issued (webapp/auth/sessions.py); a
# log-out, password change or deletion bumps it and so revokes the token.
REQUIRED_CLAIMS = ["sub", "iat", "exp", "jti", "ver"]
# `fam`, on tokens from /auth/login and /auth/refresh only: the refresh-token family they were
# issued with (webapp/api/refresh_tokens.py); revoking the family revokes them at once.
FAMILY_CLAIM = "fam"


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_in: int  # seconds


def issue_access_token(user: User, family: str | None = None) -> AccessToken:
    """A signed access token for `user`: valid for JWT_LIFETIME_SECONDS (`/auth/token`), or for
    ACCESS_TOKEN_LIFETIME_SECONDS and bound to a refresh-token `family` (`/auth/login`)."""
    setting = "JWT_LIFETIME_SECONDS" if family is None else "ACCESS_TOKEN_LIFETIME_SECONDS"
    lifetime = int(current_app.config[setting])
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": str(user.id),  # RFC 7519: a string; PyJWT checks it on decode
        "iat": now,
        "exp": now + timedelta(seconds=lifetime),
        "jti": secrets.token_urlsafe(16),
        "ver": user.session_version,
    }
    if family is not None:
        claims[FAMILY_CLAIM] = family
    token = jwt.encode(claims, current_app.config["JWT_SECRET"], algorithm=ALGORITHM)
    return AccessToken(token, lifetime)


@dataclass(frozen=True)
class TokenSubject:
    user_id: int
    session_version: int
    family: str | None = None  # the refresh-token family, for tokens from /auth/login


def subject_of_token(token: str) -> TokenSubject | None:
    """Whom a valid token names, and at which session version it was issued; None for a forged,
    expired or malformed token."""
    try:
        claims = jwt.decode(
            token,
            current_app.config["JWT_SECRET"],
            algorithms=[ALGORITHM],
            options={"require": REQUIRED_CLAIMS},
        )
    except jwt.PyJWTError:
        return None
    subject, version = claims["sub"], claims["ver"]
    family = claims.get(FAMILY_CLAIM)
    # Only tokens we signed get here, but an id that cannot be a row id must not reach the database.
    is_row_id = subject.isascii() and subject.isdigit() and len(subject) <= 18
    if not is_row_id or isinstance(version, bool) or not isinstance(version, int):
        return None
    if family is not None and not (isinstance(family, str) and len(family) <= 32):
        return None
    return TokenSubject(int(subject), version, family)
