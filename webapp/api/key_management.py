"""API keys over the API (`../shared/API.md`, "API keys over the API"): list, create, change and
revoke the caller's keys under /api/v1/api-keys.

JWT only: a key cannot manage keys, or a leaked read-only key could mint itself a full one. A
request that comes with a working API key is answered 403 `api_key_not_allowed`; there is no
`/api` twin of these endpoints. Nested in the `api` blueprint, so its error handlers and rate
limits apply here too.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any

from flask import Blueprint, Response, jsonify

from webapp.api import keys
from webapp.api.credentials import api_user, bearer_credential, require_jwt
from webapp.api.errors import ApiError, unauthorized, validation_error
from webapp.api.presenters import iso_z
from webapp.api.requests import json_object, known_query, string_field
from webapp.extensions import csrf
from webapp.models import ApiKey
from webapp.models.api_key import SCOPE_FULL, SCOPES

bp = Blueprint("api_key_management", __name__, url_prefix="/api-keys")
# Token-authenticated, like the rest of the API: no cookies, nothing for CSRF to protect.
csrf.exempt(bp)

SHOWN_ONCE_WARNING = (
    "Store this key now: it is shown once. We keep only a fingerprint of it and cannot show it "
    "again."
)
# Longest ISO 8601 timestamp we read ("2026-01-15T10:00:00.123456+05:30" is 32).
MAX_TIMESTAMP_LENGTH = 40


def present(key: ApiKey) -> dict[str, Any]:
    """A key as API.md shows it (never the secret, never the row id)."""
    return {
        "id": key.public_id,
        "name": key.name,
        "description": key.description,
        "keyPreview": f"{key.prefix}…",
        "scopes": key.scopes,
        "isActive": key.is_active,
        "lastUsedAt": iso_z(key.last_used_at),
        "expiresAt": iso_z(key.expires_at),
        "createdAt": iso_z(key.created_at),
    }


def refuse_api_keys(view: Callable[..., Any]) -> Callable[..., Any]:
    """403 `api_key_not_allowed` for a request made with a working API key (an invalid one is
    401 as anywhere else); the view itself then takes a JWT only."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        credential = bearer_credential()
        if credential is not None and keys.looks_like_api_key(credential):
            try:
                holder = keys.holder_of_key(credential)
            except keys.KeyExpired as exc:
                raise ApiError(401, exc.code, str(exc)) from None
            if holder is None:
                raise unauthorized(
                    "The API key is invalid or has been revoked; and API keys cannot manage "
                    "API keys anyway: use an access token from /auth/token."
                )
            raise ApiError(
                403,
                "api_key_not_allowed",
                "API keys cannot manage API keys. Use an access token from /auth/token.",
            )
        return view(*args, **kwargs)

    return wrapper


def _jwt_only(view: Callable[..., Any]) -> Callable[..., Any]:
    return refuse_api_keys(require_jwt(view))


# --- Reading the body ---------------------------------------------------------------------------


def _name(body: dict[str, Any], *, required: bool) -> str | None:
    name = string_field(body, "name", required=required, max_length=keys.MAX_NAME_LENGTH)
    if name is None:
        return None
    name = name.strip()
    if not name:
        raise validation_error("name must not be empty.")
    return name


def _description(body: dict[str, Any]) -> str | None:
    if body.get("description") is None:  # absent, or null to clear it
        return None
    value = string_field(body, "description", max_length=keys.MAX_DESCRIPTION_LENGTH)
    return (value or "").strip() or None


def _scope(body: dict[str, Any]) -> str | None:
    if "scopes" not in body:
        return None
    scopes = body["scopes"]
    if (
        not isinstance(scopes, list)
        or len(scopes) != 1
        or not isinstance(scopes[0], str)
        or scopes[0] not in SCOPES
    ):
        raise ApiError(
            400, "invalid_scopes", 'scopes must be ["read"] (read-only) or ["full"] (everything).'
        )
    return scopes[0]


def _expires_at(body: dict[str, Any]) -> datetime | None:
    if body.get("expiresAt") is None:
        return None
    raw = body["expiresAt"]
    if not isinstance(raw, str) or len(raw) > MAX_TIMESTAMP_LENGTH:
        raise ApiError(400, "invalid_expiry", "expiresAt must be an ISO 8601 timestamp string.")
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError(
            400,
            "invalid_expiry",
            "expiresAt must be an ISO 8601 timestamp, e.g. 2026-12-31T00:00:00Z.",
        ) from None
    if moment.tzinfo is None:
        raise ApiError(
            400, "invalid_expiry", "expiresAt needs a time zone: end it with Z or an offset."
        )
    try:
        keys.check_expiry(moment)
    except keys.InvalidExpiry as exc:
        raise ApiError(400, exc.code, str(exc)) from None
    return moment


def _not_found() -> ApiError:
    return ApiError(404, "api_key_not_found", "You have no API key with this id.")


# --- Endpoints ----------------------------------------------------------------------------------


@bp.get("")
@_jwt_only
def list_keys() -> Response:
    known_query(set())
    rows = keys.unrevoked_keys(api_user().id)
    return jsonify(apiKeys=[present(row) for row in rows], total=len(rows))


@bp.post("")
@_jwt_only
def create_key() -> tuple[Response, int]:
    body = json_object({"name", "description", "scopes", "expiresAt"})
    name = _name(body, required=True) or ""
    description = _description(body)
    scope = _scope(body) or SCOPE_FULL
    expires_at = _expires_at(body)
    try:
        new = keys.create_key(
            api_user().id, name, description=description, scope=scope, expires_at=expires_at
        )
    except keys.EmailNotVerified as exc:
        raise ApiError(403, exc.code, str(exc)) from None
    except keys.TooManyKeys as exc:
        raise ApiError(409, exc.code, str(exc)) from None
    except keys.InvalidExpiry as exc:  # the clock moved past it since we checked
        raise ApiError(400, exc.code, str(exc)) from None
    response = jsonify(apiKey=present(new.key) | {"key": new.secret}, warning=SHOWN_ONCE_WARNING)
    # The full key exists only in this response; it must not be cached anywhere on the way.
    response.headers["Cache-Control"] = "no-store"
    return response, 201


@bp.put("/<key_id>")
@_jwt_only
def update_key(key_id: str) -> Response:
    body = json_object({"name", "description", "scopes"})
    if not body:
        raise validation_error("Send at least one of name, description, scopes.")
    changes: dict[str, Any] = {}
    if "name" in body:
        changes["name"] = _name(body, required=True)
    if "description" in body:
        changes["description"] = _description(body)
    if "scopes" in body:
        changes["scope"] = _scope(body)
    key = keys.update_key(api_user().id, key_id, **changes)
    if key is None:
        raise _not_found()
    return jsonify(apiKey=present(key))


@bp.delete("/<key_id>")
@_jwt_only
def revoke_key(key_id: str) -> Response:
    key = keys.revoke_key(api_user().id, key_id)
    if key is None:
        raise _not_found()
    return jsonify(apiKey=present(key))
