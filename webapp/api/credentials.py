"""Who is calling: a JWT access token on the plain paths, an API key on the `/api` paths.

Each flavour accepts only its own kind of credential (API.md), so a leaked API key cannot be used
where the company's own front ends authenticate with short-lived tokens, and vice versa.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import current_app, g, request
from flask_limiter.util import get_remote_address

from webapp.api.errors import ApiError, unauthorized
from webapp.api.keys import KeyExpired, allows, holder_of_key, looks_like_api_key
from webapp.api.refresh_tokens import family_is_live
from webapp.api.tokens import subject_of_token
from webapp.auth import sessions
from webapp.models import User

MAX_CREDENTIAL_LENGTH = 4096


def bearer_credential() -> str | None:
    """The credential of an `Authorization: Bearer …` header, if there is one."""
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential or len(credential) > MAX_CREDENTIAL_LENGTH:
        return None
    return credential


def credential_rate_key() -> str:
    """The rate-limit bucket of the caller's credential (its digest), or of their IP without one.

    Valid or not: hammering the API with guessed credentials is limited too.
    """
    credential = bearer_credential()
    if credential is None:
        return f"ip:{get_remote_address()}"
    return "credential:" + hashlib.sha256(credential.encode()).hexdigest()[:32]


def _user_from_jwt() -> dict[str, Any]:
    """The caller's user row, as the member cache's columns (`api_user` makes it a User)."""
    credential = bearer_credential()
    if credential is None:
        raise unauthorized("Send an access token: 'Authorization: Bearer <token>'.")
    if looks_like_api_key(credential):
        raise unauthorized(
            "This endpoint takes an access token from /api/v1/auth/login or /auth/token. "
            "API keys go to the same path with /api appended."
        )
    subject = subject_of_token(credential)
    # From the member cache, as for log-in sessions: the row is read again as soon as the
    # database reports a change to it (a log-out, a password change, a deactivation).
    columns = sessions.user_columns(subject.user_id, subject.session_version) if subject else None
    # A token issued before a log-out, password change or deletion is revoked.
    if subject is None or columns is None or columns["session_version"] != subject.session_version:
        raise unauthorized("The access token is invalid or has expired.")
    if columns["deactivated_at"] is not None:
        raise unauthorized("This account has been deactivated.")
    # A token from /auth/login or /auth/refresh ends with its family (log-out, a reused
    # refresh token), before its 15 minutes are up.
    if subject.family is not None and not family_is_live(subject.family):
        raise unauthorized("The access token is invalid or has expired.")
    return columns


def _user_from_api_key() -> User:
    credential = bearer_credential()
    if credential is None:
        raise unauthorized("Send an API key: 'Authorization: Bearer llmgen_…'.")
    if not looks_like_api_key(credential):
        raise unauthorized(
            "This endpoint takes an API key (llmgen_…). "
            "Access tokens go to the same path without /api."
        )
    try:
        holder = holder_of_key(credential)
    except KeyExpired as exc:
        raise ApiError(401, exc.code, str(exc)) from None
    if holder is None:
        raise unauthorized("The API key is invalid or has been revoked.")
    # Scopes are enforced here, by method, for every `/api` endpoint at once: a new POST
    # endpoint cannot forget to check (tests/api/test_key_scopes.py walks the url_map).
    if not allows(holder.key, request.method):
        raise ApiError(
            403,
            "insufficient_scope",
            "This API key is read-only: it may only read (GET). "
            "Give it the 'full' scope on the account page or with PUT /api-keys/{id}.",
        )
    return holder.user


def _requiring(
    authenticate: Callable[[], User | dict[str, Any]],
) -> Callable[[Callable[..., Any]], Any]:
    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            g.api_caller = authenticate()
            return view(*args, **kwargs)

        return wrapper

    return decorator


require_jwt = _requiring(_user_from_jwt)
require_api_key = _requiring(_user_from_api_key)


def api_user() -> User:
    """The authenticated caller of the current API request."""
    if isinstance(g.api_caller, dict):
        # Attached to the database session only when a view asks: building the ORM object
        # cost a read-only endpoint more than the rest of its authentication (profiled).
        g.api_caller = sessions.attach_user(g.api_caller)
    return g.api_caller


def api_user_id() -> int:
    """The caller's user id, for views that need nothing else of the row."""
    caller = g.api_caller
    return caller["id"] if isinstance(caller, dict) else caller.id


# --- our own services --------------------------------------------------------------------------


def service_tokens() -> list[str]:
    """The configured service credentials (two while rotating); none: the endpoints refuse."""
    return [t for t in current_app.config.get("CREDITS_SERVICE_TOKEN", "").split(",") if t]


def require_service_token(view: Callable[..., Any]) -> Callable[..., Any]:
    """Only our generation service: `Authorization: Bearer <CREDITS_SERVICE_TOKEN>`.

    Not a user's token or API key (those name a user; the service acts for any). Compared in
    constant time; with no token configured every request is refused (fails closed).
    """

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        tokens = service_tokens()
        if not tokens:
            raise ApiError(
                503, "usage_not_configured", "Recording usage is not configured on this site."
            )
        credential = (bearer_credential() or "").encode()
        # Every configured token is compared, whichever matches, so timing says nothing.
        matches = [hmac.compare_digest(credential, token.encode()) for token in tokens]
        if not credential or not any(matches):
            raise unauthorized("This endpoint takes the service credential.")
        return view(*args, **kwargs)

    return wrapper
