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
REQUIRED_CLAIMS = ["sub", "iat", "exp", "jti"]


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
    }
    token = jwt.encode(claims, current_app.config["JWT_SECRET"], algorithm=ALGORITHM)
    return AccessToken(token, lifetime)


def user_id_from_token(token: str) -> int | None:
    """The user id a valid token names; None for a forged, expired or malformed token."""
    try:
        claims = jwt.decode(
            token,
            current_app.config["JWT_SECRET"],
            algorithms=[ALGORITHM],
            options={"require": REQUIRED_CLAIMS},
        )
    except jwt.PyJWTError:
        return None
    subject = claims["sub"]
    # Only tokens we signed get here, but an id that cannot be a row id must not reach the database.
    is_row_id = subject.isascii() and subject.isdigit() and len(subject) <= 18
    return int(subject) if is_row_id else None
