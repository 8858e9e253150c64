"""Stripe's wire format: bracket-notation params in, Stripe's error envelope out."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


class StripeAPIError(Exception):
    """An error the sandbox answers with Stripe's envelope and status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        keep_changes: bool = False,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type = status, message, type
        self.code, self.param, self.decline_code = code, param, decline_code
        # Stripe answers some requests with an error after having changed things (a failed
        # invoice payment leaves a failed charge and its events): commit them all the same.
        self.keep_changes = keep_changes

    def envelope(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        if self.decline_code:
            error["decline_code"] = self.decline_code
        return {"error": error}


def resource_missing(object_name: str, object_id: str, param: str = "id") -> StripeAPIError:
    return StripeAPIError(
        404,
        f"No such {object_name}: '{object_id}'",
        code="resource_missing",
        param=param,
    )


def invalid(message: str, param: str | None = None, code: str | None = None) -> StripeAPIError:
    return StripeAPIError(400, message, code=code or "parameter_invalid_string", param=param)


def refused(message: str, param: str | None = None, code: str | None = None) -> StripeAPIError:
    """A well-formed request Stripe will not carry out in the object's current state: 400
    `invalid_request_error`, with a `code` only where Stripe has one."""
    return StripeAPIError(400, message, code=code, param=param)


def _split_key(key: str) -> list[str]:
    """`line_items[0][price]` → `["line_items", "0", "price"]`; `expand[]` → `["expand", ""]`."""
    head, _, rest = key.partition("[")
    parts = [head]
    while rest:
        inner, _, rest = rest.partition("]")
        parts.append(inner)
        rest = rest[1:] if rest.startswith("[") else rest
    return parts


def _listify(value: Any) -> Any:
    # Dicts whose keys are all indexes were arrays on the client's side.
    if isinstance(value, dict):
        value = {key: _listify(item) for key, item in value.items()}
        if value and all(isinstance(k, int) for k in value):
            return [value[k] for k in sorted(value)]
    return value


def decode_params(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Decode form or query pairs in Stripe's bracket notation into nested dicts and lists."""
    root: dict[Any, Any] = {}
    for raw_key, value in pairs:
        parts = _split_key(raw_key)
        node = root
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            key: Any = part
            if part == "":  # `expand[]=a&expand[]=b`: append
                key = len(node)
            elif part.isdigit() and depth > 0:
                key = int(part)
            if last:
                node[key] = value
            else:
                node = node.setdefault(key, {})
                if not isinstance(node, dict):
                    raise invalid(f"Invalid parameter: {raw_key}", param=raw_key)
    return _listify(root)


def dumps(body: Any) -> str:
    return json.dumps(body, indent=2, sort_keys=False)


# Schemas of the parameters each endpoint accepts. A name maps to SCALAR (any string), MAP (free
# string keys, e.g. metadata), a nested dict schema, or a one-element list holding the schema of
# each element. Anything else is `parameter_unknown`, as Stripe answers.
SCALAR = "scalar"
MAP = "map"


class Emptyable(dict):
    """An object parameter Stripe also takes as "" to unset it (`address=`; the SDK types
    these `Literal['']|…Params`)."""


def validate(params: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> None:
    """Refuse parameters the endpoint does not know, naming them the way Stripe does."""
    for name, value in params.items():
        path = f"{prefix}[{name}]" if prefix else str(name)
        if name not in schema:
            raise StripeAPIError(
                400, f"Received unknown parameter: {path}", code="parameter_unknown", param=path
            )
        rule = schema[name]
        if rule == SCALAR:
            if isinstance(value, dict | list):
                raise invalid(f"Invalid value for {path}: expected a string.", param=path)
        elif rule == MAP:
            if value == "":
                continue  # `metadata=` clears it
            if not isinstance(value, dict):
                raise invalid(f"Invalid object for {path}.", param=path, code="parameter_invalid")
        elif isinstance(rule, list):
            if value == "":
                continue  # Stripe's emptyable arrays: `conditions=` clears the list
            if not isinstance(value, list):
                raise invalid(f"Invalid array for {path}.", param=path, code="parameter_invalid")
            for index, item in enumerate(value):
                if rule[0] == SCALAR:
                    continue
                if not isinstance(item, dict):
                    raise invalid(f"Invalid object for {path}[{index}].", param=f"{path}[{index}]")
                validate(item, rule[0], f"{path}[{index}]")
        elif isinstance(rule, dict):
            if value == "" and isinstance(rule, Emptyable):
                continue
            if not isinstance(value, dict):
                raise invalid(f"Invalid object for {path}.", param=path, code="parameter_invalid")
            validate(value, rule, path)


def as_bool(value: Any, param: str) -> bool:
    if value in (True, "true"):
        return True
    if value in (False, "false"):
        return False
    raise invalid(f"Invalid boolean: {value}", param=param, code="parameter_invalid_boolean")


def as_int(value: Any, param: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid(
            f"Invalid integer: {value}", param=param, code="parameter_invalid_integer"
        ) from None
