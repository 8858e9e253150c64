"""Checking request parameters against the SDK's own parameter types.

The SDK types every method's `params` as a TypedDict of the pinned API version
(`stripe.params.checkout.SessionCreateParams`, `stripe.params.CouponCreateParams`…). The SDK does
not check them at run time; this module does, so a misspelt name (`allow_promotion_code`), an
unknown nested key or a value outside a Literal fails a test instead of reaching Stripe.

- `RecordingClient` stands in front of the app's real `StripeClient`, passes every call on
  unchanged, and records each service call: the service method and the params it was given.
- `params_type` finds the method's TypedDict from its own signature (the services import their
  params types under TYPE_CHECKING; the names resolve in `stripe.params[.<namespace>]`).
- `check` walks a value against a type: TypedDicts (no unknown keys, every required key),
  List, Dict (and the SDK's `UntypedStripeObject`), Literal, Union, str/int/float/bool.

Policy: where the SDK types a field `Literal[...] | str` (open enums, for values newer than the
SDK), a string must still be one of the Literal's values: we send only values of the pinned
version, so anything else is a typo. (`Literal[""] | str` is Stripe's "emptyable" string: any
string.)
"""

from __future__ import annotations

import importlib
import inspect
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, Required, Union, get_args, get_origin

import stripe
from stripe._stripe_service import StripeService
from typing_extensions import is_typeddict


@dataclass(frozen=True)
class Call:
    operation: str  # e.g. "v1.checkout.sessions.create"
    method: Any  # the bound service method
    params: Any


class RecordingClient:
    """The real client, recording each service call's params (and changing nothing)."""

    def __init__(self, target: Any, calls: list[Call] | None = None, path: str = "") -> None:
        self._target, self._path = target, path
        self.calls: list[Call] = [] if calls is None else calls

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        path = f"{self._path}.{name}" if self._path else name
        if isinstance(value, StripeService):
            return RecordingClient(value, self.calls, path)
        if callable(value) and isinstance(self._target, StripeService):
            return self._recording(path, value)
        return value

    def _recording(self, path: str, method: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            bound = inspect.signature(method).bind(*args, **kwargs)
            self.calls.append(Call(path, method, bound.arguments.get("params")))
            return method(*args, **kwargs)

        return call


def params_type(method: Any) -> Any:
    """The TypedDict the SDK declares for `method`'s `params`."""
    annotation = inspect.signature(method).parameters["params"].annotation
    name = _forward_name(annotation)
    module = method.__func__.__module__  # stripe.checkout._session_service, stripe._coupon_service
    package = module.rsplit(".", 1)[0]
    namespace = "stripe.params" + package.removeprefix("stripe")
    return getattr(importlib.import_module(namespace), name)


def _forward_name(annotation: Any) -> str:
    if isinstance(annotation, str):
        inner = annotation.removeprefix("Optional[").removesuffix("]").strip("\"'")
        return inner
    for arg in get_args(annotation):
        if isinstance(arg, typing.ForwardRef):
            return arg.__forward_arg__
        if arg is not type(None):
            return getattr(arg, "__name__", str(arg))
    raise TypeError(f"cannot read the params type of {annotation!r}")


class ParamError(AssertionError):
    pass


def check(value: Any, expected: Any, path: str = "params") -> None:
    """Raise ParamError naming the first part of `value` that `expected` does not allow."""
    origin = get_origin(expected)
    if origin in (NotRequired, Required):
        return check(value, get_args(expected)[0], path)
    if expected is Any:
        return None
    if origin is Literal:
        if value not in get_args(expected):
            allowed = ", ".join(repr(a) for a in get_args(expected))
            raise ParamError(f"{path}: {value!r} is not one of {allowed}")
        return None
    if origin in (Union, types.UnionType):
        return _check_union(value, get_args(expected), path)
    if is_typeddict(expected):
        return _check_typeddict(value, expected, path)
    if origin in (list, typing.List):  # noqa: UP006
        if not isinstance(value, list | tuple):
            raise ParamError(f"{path}: expected a list, got {value!r}")
        for index, item in enumerate(value):
            check(item, get_args(expected)[0], f"{path}[{index}]")
        return None
    if origin in (dict, typing.Dict) or _is_untyped_object(expected):  # noqa: UP006
        if not isinstance(value, dict):
            raise ParamError(f"{path}: expected a mapping, got {value!r}")
        args = get_args(expected)
        for key, item in value.items():
            if not isinstance(key, str):
                raise ParamError(f"{path}: keys must be strings, got {key!r}")
            check(item, args[-1] if args else Any, f"{path}[{key}]")
        return None
    if expected is bool:
        if not isinstance(value, bool):
            raise ParamError(f"{path}: expected a boolean, got {value!r}")
        return None
    if expected in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ParamError(f"{path}: expected a number, got {value!r}")
        if expected is int and not isinstance(value, int):
            raise ParamError(f"{path}: expected an integer, got {value!r}")
        return None
    if expected is str:
        if not isinstance(value, str):
            raise ParamError(f"{path}: expected a string, got {value!r}")
        return None
    if expected is type(None):
        if value is not None:
            raise ParamError(f"{path}: expected null, got {value!r}")
        return None
    raise ParamError(f"{path}: the checker does not know the type {expected!r}")


class _SDKNames(dict):
    """Names the params modules import only under TYPE_CHECKING (`StripeContext`…), found in
    the `stripe` package when a forward reference needs them."""

    def __missing__(self, name: str) -> Any:
        for source in (stripe, typing):
            if hasattr(source, name):
                return getattr(source, name)
        raise KeyError(name)


_SDK_NAMES = _SDKNames()


def _is_untyped_object(expected: Any) -> bool:
    target = get_origin(expected) or expected
    return isinstance(target, type) and target.__name__ == "UntypedStripeObject"


def _check_union(value: Any, members: tuple[Any, ...], path: str) -> None:
    # `Literal[""]` is Stripe's "emptyable" marker (send "" to clear), not an enum.
    literals = [m for m in members if get_origin(m) is Literal and get_args(m) != ("",)]
    others = [m for m in members if get_origin(m) is not Literal]
    if literals and isinstance(value, str):
        allowed = [a for literal in literals for a in get_args(literal)]
        # An open enum (`Literal[...] | str`): only the Literal's values (see the module doc).
        if value in allowed:
            return
        if not any(m is not str and _accepts(value, m, path) for m in others):
            raise ParamError(
                f"{path}: {value!r} is not one of {', '.join(repr(a) for a in allowed)}"
            )
        return
    errors = []
    for member in members:
        try:
            check(value, member, path)
            return
        except ParamError as exc:
            errors.append(str(exc))
    raise ParamError(errors[-1] if len(errors) == 1 else f"{path}: no match: " + "; ".join(errors))


def _accepts(value: Any, member: Any, path: str) -> bool:
    try:
        check(value, member, path)
    except ParamError:
        return False
    return True


def _check_typeddict(value: Any, expected: Any, path: str) -> None:
    if not isinstance(value, dict):
        raise ParamError(f"{path}: expected an object ({expected.__name__}), got {value!r}")
    hints = typing.get_type_hints(expected, localns=_SDK_NAMES, include_extras=True)
    for key, item in value.items():
        if key not in hints:
            raise ParamError(
                f"{path}: unknown parameter {key!r} for {expected.__name__} "
                f"(stripe {stripe.VERSION}, API {stripe.api_version})"
            )
        check(item, hints[key], f"{path}[{key}]")
    missing = sorted(k for k in expected.__required_keys__ if k not in value)
    if missing:
        raise ParamError(f"{path}: missing required parameter {missing[0]!r}")
