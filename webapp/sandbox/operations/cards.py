"""Stripe's test cards: which numbers are refused, and attaching a card to a customer."""

from __future__ import annotations

import copy
from typing import Any

from webapp.sandbox import objects
from webapp.sandbox.store import Store, diff
from webapp.sandbox.wire import StripeAPIError

# Stripe's test card numbers refused at checkout (docs.stripe.com/testing, "Declined payments").
DECLINES = {
    "4000000000000002": ("card_declined", "generic_decline", "Your card was declined."),
    "4000000000009995": (
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
}
# What 4000 0000 0000 0341 answers once it has paid its first charge.
LATER_DECLINE = ("card_declined", "generic_decline", "Your card was declined.")
# "Always authenticate: This card requires authentication on all transactions, regardless of
# how the card is set up" (docs.stripe.com/testing, "Regulatory (3D Secure) test cards").
ALWAYS_AUTHENTICATE = "4000002760003184"
# How the issuer answers a charge on that card that was not authenticated: the decline code
# `authentication_required` ("The card was declined as the transaction requires
# authentication", docs.stripe.com/declines/codes). Assumption: the message is the one
# Stripe's card errors carry for that code.
AUTHENTICATION_REQUIRED = (
    "authentication_required",
    "authentication_required",
    "Your card was declined. This transaction requires authentication.",
)


class CardError(StripeAPIError):
    def __init__(
        self,
        message: str,
        code: str,
        decline_code: str | None = None,
        *,
        keep_changes: bool = False,
    ) -> None:
        super().__init__(
            402,
            message,
            type="card_error",
            code=code,
            decline_code=decline_code,
            param=None,
            keep_changes=keep_changes,
        )


def normalise_card_number(number: str) -> str:
    return "".join(ch for ch in number if ch.isdigit())


def _luhn_ok(number: str) -> bool:
    digits = [int(ch) for ch in reversed(number)]
    total = sum(
        d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(digits)
    )
    return total % 10 == 0


def check_card(number: str, exp_month: int, exp_year: int, now_year: int, now_month: int) -> None:
    """Raise CardError for the numbers Stripe declines and for malformed cards."""
    if not (13 <= len(number) <= 19) or not _luhn_ok(number):
        raise CardError("Your card number is invalid.", "invalid_number")
    if not 1 <= exp_month <= 12:
        raise CardError("Your card's expiration month is invalid.", "invalid_expiry_month")
    if (exp_year, exp_month) < (now_year, now_month):
        raise CardError("Your card has expired.", "expired_card")
    if number in DECLINES:
        code, decline_code, message = DECLINES[number]
        raise CardError(message, code, decline_code)


def card_failure(pm: dict[str, Any]) -> tuple[str, str | None, str] | None:
    """How charging `pm` fails now, as (code, decline_code, message), or None if it pays.

    On Stripe, 4000 0000 0000 0341 attaches to a customer and then every charge fails
    (docs.stripe.com/testing). The sandbox lets its first charge through (the checkout or card
    update that attached it, standing in for the successful attach) so that a subscription can
    start on it, and declines every charge after that: renewals, upgrades, retries.
    """
    if pm.get("_renewal_fails") and pm.get("_charges", 0) > 0:
        return LATER_DECLINE
    return None


def needs_authentication(card: dict[str, Any] | str) -> bool:
    """True for a card (a payment method or a card number) whose every charge needs 3-D
    Secure, so the customer must complete a challenge before it is paid."""
    if isinstance(card, str):
        return card == ALWAYS_AUTHENTICATE
    return bool(card.get("_always_authenticate"))


def attach_card(
    store: Store, customer: dict[str, Any], card_number: str, exp_month: int, exp_year: int
) -> dict[str, Any]:
    """A new card payment method, attached and made the customer's default."""
    pm = objects.payment_method(
        store.now(),
        customer_id=customer["id"],
        card_number=card_number,
        exp_month=exp_month,
        exp_year=exp_year,
    )
    store.save(pm)
    store.emit("payment_method.attached", pm)
    before = copy.deepcopy(customer)
    customer["invoice_settings"]["default_payment_method"] = pm["id"]
    store.save(customer)
    store.emit("customer.updated", customer, diff(before, customer))
    return pm
