"""Billing's own errors for what the payment provider answered.

Pages, the API and commands catch these and import nothing from the gateway: the billing
functions they call wrap the gateway's exceptions at the boundary (`provider_errors`). Inside
billing, code still catches the gateway's own (`InvalidRequest` for an id Stripe does not know).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from webapp import stripe_gateway

P = ParamSpec("P")
T = TypeVar("T")


class PaymentProviderError(Exception):
    """Stripe could not do what billing asked. `user_message` is safe to show to people."""

    user_message = "Something went wrong with our payment provider. Please try again."

    def __init__(self, message: str, *, user_message: str | None = None) -> None:
        super().__init__(message)
        if user_message:
            self.user_message = user_message


class CardDeclined(PaymentProviderError):
    """The card was refused; `decline_code` says why (e.g. `insufficient_funds`)."""

    def __init__(self, message: str, *, decline_code: str | None, user_message: str) -> None:
        super().__init__(message, user_message=user_message)
        self.decline_code = decline_code


class ProviderUnavailable(PaymentProviderError):
    """Stripe could not be reached, timed out, failed or rate-limited us: a retry may work."""


def from_gateway(exc: stripe_gateway.PaymentProviderError) -> PaymentProviderError:
    """The billing error for one of the gateway's."""
    message = str(exc)
    if isinstance(exc, stripe_gateway.CardDeclined):
        return CardDeclined(message, decline_code=exc.decline_code, user_message=exc.user_message)
    if isinstance(exc, stripe_gateway.ProviderUnavailable):
        return ProviderUnavailable(message, user_message=exc.user_message)
    return PaymentProviderError(message, user_message=exc.user_message)


def provider_errors(func: Callable[P, T]) -> Callable[P, T]:
    """Mark a billing entry point: the gateway's errors leave it as billing's own."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return func(*args, **kwargs)
        except stripe_gateway.PaymentProviderError as exc:
            raise from_gateway(exc) from exc

    return wrapper


def required(value: T | None, what: str) -> T:
    """A field Stripe's types allow to be null but always sets on the objects billing reads
    (a new session's URL, a session's or an invoice's status): missing, it is Stripe's fault."""
    if value is None:
        raise PaymentProviderError(f"Stripe answered without {what}")
    return value
