"""What every part of billing shares: its errors, and the helpers for reading Stripe objects.

Never hold a database transaction open across a call to Stripe (`call_stripe`): no row locks held
during network I/O, and no stale SQLite snapshot when the in-process sandbox writes meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from webapp.extensions import db

T = TypeVar("T")

LIVE_STATUSES = frozenset({"active", "trialing", "past_due"})


class BillingError(Exception):
    """A request the billing rules refuse; `code` is stable (the API's error code)."""

    code = "billing_error"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SubscriptionExists(BillingError):
    code = "subscription_exists"


class NoBillingAccount(BillingError):
    code = "no_billing_account"


class CheckoutNotFound(BillingError):
    code = "checkout_not_found"
    status = 404


class CheckoutBusy(BillingError):
    """Another checkout start of the same user holds the lock for too long."""

    code = "checkout_in_progress"
    status = 409


class CatalogMismatch(BillingError):
    """Stripe would charge something other than the catalog says; refuse rather than surprise."""

    code = "catalog_mismatch"
    status = 503


def call_stripe(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call the gateway with no transaction of ours open (see the module docstring)."""
    db.session.commit()
    return call(*args, **kwargs)


def from_timestamp(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None


def required_timestamp(value: int) -> datetime:
    """A timestamp Stripe always sets (`created`, a line's period)."""
    return datetime.fromtimestamp(value, UTC)


def dig(obj: Any, *path: str) -> Any:
    """Follow `path` through Stripe objects or dicts; None where a step is missing."""
    for key in path:
        if obj is None or isinstance(obj, str):
            return None
        try:
            obj = obj[key]
        except (KeyError, TypeError):
            return None
    return obj


def id_of(value: Any) -> str | None:
    """An expandable Stripe field: either an id or the expanded object."""
    if value is None or isinstance(value, str):
        return value
    return str(value.id)
