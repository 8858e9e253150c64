"""JWT access tokens for the API: HS256 with the API's own secret, short-lived.

Only HS256 is ever accepted when decoding. Naming the algorithm list explicitly is what defeats
`alg: none` and algorithm-confusion tokens; PyJWT refuses anything not in `algorithms`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from flask import current_app

from webapp.models import User

ALGORITHM = "HS256"
# `ver`: the user's session version when the token was issued (webapp/auth/sessions.py); a
# log-out, password change or deletion bumps it and so revokes the token.
REQUIRED_CLAIMS = ["sub", "iat", "exp", "jti", "ver"]


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_in: int  # seconds


def issue_access_token(user: User) -> AccessToken:
    """A signed access token for `user`, valid for JWT_LIFETIME_SECONDS."""
    lifetime = int(current_app.config["JWT_LIFETIME_SECONDS"])
    now = datetime.now(UTC)
    claims = {
        "sub": str(user.id),  # RFC 7519: a string; PyJWT checks it on decode
        "iat": now,
        "exp": now + timedelta(seconds=lifetime),
        "jti": secrets.token_urlsafe(16),
        "ver": user.session_version,
    }
    token = jwt.encode(claims, current_app.config["JWT_SECRET"], algorithm=ALGORITHM)
    return AccessToken(token, lifetime)


@dataclass(frozen=True)
class TokenSubject:
    user_id: int
    session_version: int


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
    # Only tokens we signed get here, but an id that cannot be a row id must not reach the database.
    is_row_id = subject.isascii() and subject.isdigit() and len(subject) <= 18
    if not is_row_id or isinstance(version, bool) or not isinstance(version, int):
        return None
    return TokenSubject(int(subject), version)
