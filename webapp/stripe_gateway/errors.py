"""Our exceptions for what Stripe answers, and the one place Stripe's own become ours."""

from __future__ import annotations

from typing import Any

import stripe


class PaymentProviderError(Exception):
    """Stripe could not do what we asked. `user_message` is safe to show to people."""

    user_message = "Something went wrong with our payment provider. Please try again."

    def __init__(self, message: str, *, user_message: str | None = None) -> None:
        super().__init__(message)
        if user_message:
            self.user_message = user_message


class CardDeclined(PaymentProviderError):
    """The card was refused; `decline_code` says why (e.g. `insufficient_funds`)."""

    def __init__(self, message: str, *, decline_code: str | None, user_message: str | None):
        super().__init__(message, user_message=user_message or "Your card was declined.")
        self.decline_code = decline_code


class InvalidRequest(PaymentProviderError):
    """Stripe refused the request as malformed (a 400-class answer): a bug on our side."""

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.code, self.param = code, param


class ResourceMissing(InvalidRequest):
    """The id we asked about does not exist on Stripe (404 `resource_missing`)."""


class AuthenticationFailed(PaymentProviderError):
    """Our API key was refused."""


class ProviderUnavailable(PaymentProviderError):
    """Stripe could not be reached, timed out, failed (5xx) or rate-limited us: try later."""

    user_message = (
        "Our payment provider is not responding right now. Nothing was charged; please try "
        "again in a minute."
    )


class SignatureVerificationFailed(Exception):
    """A webhook's `Stripe-Signature` does not match its body with any of our secrets."""


def plain_metadata(metadata: Any) -> dict[str, str]:
    """Stripe metadata (a StripeObject, a dict or None) as a plain dict."""
    if metadata is None:
        return {}
    return metadata.to_dict() if hasattr(metadata, "to_dict") else dict(metadata)


def first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def convert_error(exc: stripe.StripeError) -> PaymentProviderError:
    code = getattr(exc, "code", None)
    param = getattr(exc, "param", None)
    message = str(exc.user_message or exc)
    if isinstance(exc, stripe.CardError):
        error = exc.error
        decline_code = (error.decline_code if error else None) or code
        return CardDeclined(message, decline_code=decline_code, user_message=exc.user_message)
    if isinstance(exc, stripe.IdempotencyError):
        return InvalidRequest(message, code="idempotency_error", param=param)
    if isinstance(exc, stripe.InvalidRequestError):
        if code == "resource_missing" or exc.http_status == 404:
            return ResourceMissing(message, code=code, param=param)
        return InvalidRequest(message, code=code, param=param)
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return AuthenticationFailed(message)
    if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError | stripe.APIError):
        return ProviderUnavailable(message)
    if (exc.http_status or 0) >= 500:
        return ProviderUnavailable(message)
    return PaymentProviderError(message)
