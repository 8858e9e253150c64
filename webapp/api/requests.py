"""Reading and validating JSON request bodies, with the API's error codes."""

from __future__ import annotations

import json
from typing import Any

from flask import request

from webapp.api.errors import ApiError, validation_error


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_object(allowed_fields: set[str]) -> dict[str, Any]:
    """The request body as a JSON object; `{}` when there is no body at all.

    415 for a body that is not declared as JSON, 400 `invalid_json` for one that does not parse,
    400 `validation_error` for anything but an object or for fields the endpoint does not know
    (a typo such as `success_url` must not silently fall back to a default).
    """
    data = request.get_data(cache=True)  # 413 past MAX_CONTENT_LENGTH, before anything is parsed
    if not data:
        return {}
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "Send the body as application/json.")
    try:
        payload = json.loads(data, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise ApiError(400, "invalid_json", "The request body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise validation_error("The request body must be a JSON object.")
    unknown = sorted(set(payload) - allowed_fields)
    if unknown:
        raise validation_error(f"Unknown field: {unknown[0]!r}.")
    return payload


def string_field(
    payload: dict[str, Any], name: str, *, required: bool = False, max_length: int = 2048
) -> str | None:
    """`payload[name]` if it is a string; None when absent and optional."""
    if name not in payload:
        if required:
            raise validation_error(f"{name} is required.")
        return None
    value = payload[name]
    if not isinstance(value, str):
        raise validation_error(f"{name} must be a string.")
    if len(value) > max_length:
        raise validation_error(f"{name} must be at most {max_length} characters.")
    return value


def integer_field(payload: dict[str, Any], name: str, *, minimum: int, maximum: int) -> int:
    """`payload[name]`, required, as a whole number in [minimum, maximum] (not a boolean, not
    a float such as 1.0, not a numeric string)."""
    if name not in payload:
        raise validation_error(f"{name} is required.")
    value = payload[name]
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise validation_error(f"{name} must be a whole number from {minimum} to {maximum}.")
    return value


def query_integer(name: str, *, default: int, minimum: int, maximum: int) -> int:
    """`?name=` as a whole number in [minimum, maximum]; `default` when absent. 400
    `validation_error` otherwise (a typo must not silently fall back to the default)."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not minimum <= int(raw) <= maximum:
        raise validation_error(f"{name} must be a whole number from {minimum} to {maximum}.")
    return int(raw)


def known_query(allowed: set[str]) -> None:
    """400 `validation_error` for a query parameter the endpoint does not know, or one given
    twice: a typo such as `?limt=5` must not silently fall back to the default."""
    unknown = sorted(set(request.args) - allowed)
    if unknown:
        raise validation_error(f"Unknown query parameter: {unknown[0]!r}.")
    repeated = sorted(name for name in request.args if len(request.args.getlist(name)) > 1)
    if repeated:
        raise validation_error(f"{repeated[0]} is given more than once.")
