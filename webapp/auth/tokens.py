"""The signed links account recovery mails: password reset, address verification, address change.

Each token is an itsdangerous timed signature (SECRET_KEY, one salt per purpose, so a token made
for one purpose is refused by every other) over a small JSON payload, and expires after its
setting's number of seconds. Payloads are signed, not encrypted: they hold ids, addresses and
fingerprints only, never a secret.

- **Password reset** binds a *fingerprint* of what the reset changes: the address, the password
  hash and the session version. Using the link changes the hash and the version, so the link dies
  with its first use; so does every outstanding one after any password change, log-out
  everywhere or address change. The fingerprint is an HMAC under SECRET_KEY, so the payload
  says nothing about the hash.
- **Verification** binds the user and the address it was sent to: once the address changes, a
  link mailed to the old one verifies nothing.
- **Address change** binds the user, the old address, the new one and a fingerprint of the
  password hash: it applies only while the account still has the old address (so it works once)
  and the same password (so resetting the password stops a change someone else asked for).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from webapp.models import User


class InvalidToken(Exception):
    """The link is garbled, forged, made for something else, or names no usable account."""


class ExpiredToken(InvalidToken):
    """The link was genuine but is too old, or was already used (its fingerprint moved on)."""


RESET = "password-reset"
VERIFY = "verify-email"
CHANGE_EMAIL = "change-email"


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=f"account-{purpose}")


def _load(purpose: str, token: str, max_age_setting: str) -> dict[str, Any]:
    try:
        payload = _serializer(purpose).loads(token, max_age=current_app.config[max_age_setting])
    except SignatureExpired as exc:
        raise ExpiredToken(purpose) from exc
    except BadSignature as exc:
        raise InvalidToken(purpose) from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("u"), int):
        raise InvalidToken(purpose)  # signed by us, so only an older format could get here
    return payload


def password_fingerprint(user: User, *, with_sessions: bool = True) -> str:
    """What a link is valid for: this address and password hash and (`with_sessions`) this
    session version."""
    version = user.session_version if with_sessions else "-"
    message = f"{user.id}\0{user.email}\0{user.password_hash}\0{version}"
    digest = hmac.new(
        current_app.config["SECRET_KEY"].encode(), message.encode(), hashlib.sha256
    ).hexdigest()
    return digest[:32]


def reset_token(user: User) -> str:
    return _serializer(RESET).dumps({"u": user.id, "f": password_fingerprint(user)})


def read_reset_token(token: str) -> tuple[int, str]:
    """(user id, fingerprint) of a genuine, unexpired reset token; the caller compares the
    fingerprint with the user's current one (ExpiredToken when it moved on)."""
    payload = _load(RESET, token, "PASSWORD_RESET_MAX_AGE")
    if not isinstance(payload.get("f"), str):
        raise InvalidToken(RESET)
    return payload["u"], payload["f"]


def check_reset_fingerprint(user: User, fingerprint: str) -> None:
    """Raise ExpiredToken unless the link was made for the account as it is now."""
    if not hmac.compare_digest(password_fingerprint(user), fingerprint):
        raise ExpiredToken(RESET)


def verify_token(user: User) -> str:
    return _serializer(VERIFY).dumps({"u": user.id, "e": user.email})


def read_verify_token(token: str) -> tuple[int, str]:
    """(user id, the address the link was sent to)."""
    payload = _load(VERIFY, token, "EMAIL_VERIFY_MAX_AGE")
    if not isinstance(payload.get("e"), str):
        raise InvalidToken(VERIFY)
    return payload["u"], payload["e"]


@dataclass(frozen=True)
class EmailChange:
    user_id: int
    old: str
    new: str
    fingerprint: str

    def check(self, user: User) -> None:
        """Raise ExpiredToken unless the account still has the old address and password."""
        current = password_fingerprint(user, with_sessions=False)
        if user.email != self.old or not hmac.compare_digest(current, self.fingerprint):
            raise ExpiredToken(CHANGE_EMAIL)


def change_email_token(user: User, new_email: str) -> str:
    fingerprint = password_fingerprint(user, with_sessions=False)
    return _serializer(CHANGE_EMAIL).dumps(
        {"u": user.id, "o": user.email, "n": new_email, "f": fingerprint}
    )


def read_change_email_token(token: str) -> EmailChange:
    payload = _load(CHANGE_EMAIL, token, "EMAIL_CHANGE_MAX_AGE")
    old, new, fingerprint = (payload.get(name) for name in ("o", "n", "f"))
    if not (isinstance(old, str) and isinstance(new, str) and isinstance(fingerprint, str)):
        raise InvalidToken(CHANGE_EMAIL)
    return EmailChange(payload["u"], old, new, fingerprint)
