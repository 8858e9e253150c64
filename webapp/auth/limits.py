"""How many password checks an attempt may cost, and the browsers that have earned their own.

Every password check (right or wrong, known address or not) spends, in turn:

- `LOGIN_ACCOUNT_IP_RATE_LIMIT`, per account and client address: one guesser is slowed first,
  and its hourly window is the back-off;
- `LOGIN_RATE_LIMIT`, per client address over every account: slows trying one password on many
  accounts, yet high enough for an office behind one address;
- `LOGIN_ACCOUNT_RATE_LIMIT`, per account over all addresses: the ceiling, whatever the number
  of addresses or workers. A minute long, so a lock-out ends a minute after the attack stops.

A browser that has logged in to the account before carries a signed *device cookie* for it
(OWASP, "Slow Down Online Guessing Attacks with Device Cookies") and spends only its own
`LOGIN_DEVICE_RATE_LIMIT`: an attacker spending the account's budgets, even from the owner's own
address, does not lock the owner out of a browser they have used before.
"""

from __future__ import annotations

import secrets

from flask import after_this_request, current_app, request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response

from webapp.throttle import account_key, client_address, spend

DEVICE_COOKIE = "login_device"
DEVICE_COOKIE_DAYS = 180
# The cookie is only needed where passwords are checked.
DEVICE_COOKIE_PATH = "/login"


def spend_login_attempt(email: str, device: str | None = None) -> None:
    """Spend one password check for `email`, or answer 429 (the same for every address)."""
    account = account_key(email)
    if device is not None:
        spend(("LOGIN_DEVICE_RATE_LIMIT", device))
        return
    address = client_address()
    spend(
        ("LOGIN_ACCOUNT_IP_RATE_LIMIT", f"{account}:{address}"),
        ("LOGIN_RATE_LIMIT", address),
        ("LOGIN_ACCOUNT_RATE_LIMIT", account),
    )


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="login-device")


def device_for(email: str) -> str | None:
    """This browser's device id for `email`, if it logged in to that account before."""
    value = request.cookies.get(DEVICE_COOKIE)
    if not value:
        return None
    try:
        claims = _serializer().loads(value, max_age=DEVICE_COOKIE_DAYS * 86400)
    except BadSignature:
        return None
    if not isinstance(claims, dict) or claims.get("account") != account_key(email):
        return None
    device = claims.get("device")
    return device if isinstance(device, str) else None


def remember_device(email: str) -> None:
    """After a successful log-in: give this browser its own budget for `email` from now on."""
    value = _serializer().dumps({"account": account_key(email), "device": secrets.token_hex(8)})

    @after_this_request
    def set_cookie(response: Response) -> Response:
        response.set_cookie(
            DEVICE_COOKIE,
            value,
            max_age=DEVICE_COOKIE_DAYS * 86400,
            path=DEVICE_COOKIE_PATH,
            secure=current_app.config["SESSION_COOKIE_SECURE"],
            httponly=True,
            samesite="Lax",
        )
        return response
