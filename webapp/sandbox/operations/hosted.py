"""What the hosted pages do besides Checkout: paying an invoice on its hosted invoice page, and
the 3-D Secure challenge a card such as 4000 0027 6000 3184 asks for before it pays.

A challenge is a private sandbox object (never shown by the API): which payment it is for,
with which card, and whether it was used. Completing it pays; failing it leaves the payment
unpaid, as Stripe's test authentication page does ("Complete" / "Fail" authentication).
"""

from __future__ import annotations

import copy
from typing import Any

from webapp.sandbox import objects
from webapp.sandbox.operations.payments import (
    after_invoice_paid,
    fail_authentication,
    invoice_subscription,
    pay_invoice,
)
from webapp.sandbox.store import Store, diff, new_id

LINK = "sandbox.hosted_invoice_link"
CHALLENGE = "sandbox.three_d_secure_challenge"
# What Checkout tells the customer when the challenge fails (Stripe's hosted pages' wording).
AUTHENTICATION_FAILED_MESSAGE = (
    "We are unable to authenticate your payment method. Please choose a different payment "
    "method and try again."
)


def linked_invoice(store: Store, token: str, *, for_update: bool = False) -> dict[str, Any] | None:
    """The invoice a hosted invoice link points at, or None for an unknown link."""
    link = store.find(token)
    if link is None or link.get("object") != LINK:
        return None
    return store.find(link["invoice"], for_update=for_update)


def new_card(
    store: Store, customer_id: str, number: str, exp_month: int, exp_year: int
) -> dict[str, Any]:
    """A card entered on the hosted invoice page: saved, attached to nobody until it pays."""
    pm = objects.payment_method(
        store.now(),
        customer_id=customer_id,
        card_number=number,
        exp_month=exp_month,
        exp_year=exp_year,
    )
    pm["customer"] = None
    store.save(pm)
    return pm


def pay_on_hosted_page(
    store: Store, invoice: dict[str, Any], pm: dict[str, Any], *, authenticated: bool = False
) -> bool:
    """The customer pays `invoice` on its hosted page (on-session); True when it is paid.

    A subscription waiting on it recovers (past_due → active). A new card that paid is kept:
    attached to the customer, made the subscription's default (its renewals are charged to the
    card that just worked) and the customer's default when they have none. Assumption: Stripe's
    hosted invoice page saves the card it was paid with for a subscription invoice; its account
    setting `invoices.hosted_payment_method_save` (always/offer/never) concerns customers who
    already have a default, for whom the sandbox keeps that default as it is.
    """
    if not pay_invoice(store, invoice, pm, off_session=False, authenticated=authenticated):
        return False
    after_invoice_paid(store, invoice)
    if pm.get("customer") is None:
        _keep_card(store, invoice, pm)
    return True


def _keep_card(store: Store, invoice: dict[str, Any], pm: dict[str, Any]) -> None:
    pm["customer"] = invoice["customer"]
    store.save(pm)
    store.emit("payment_method.attached", pm)
    customer = store.get("customer", invoice["customer"], for_update=True)
    if not customer["invoice_settings"]["default_payment_method"]:
        before = copy.deepcopy(customer)
        customer["invoice_settings"]["default_payment_method"] = pm["id"]
        store.save(customer)
        store.emit("customer.updated", customer, diff(before, customer))
    sub = invoice_subscription(store, invoice)
    if sub is not None and sub["status"] != "canceled":
        before = copy.deepcopy(sub)
        sub["default_payment_method"] = pm["id"]
        store.save(sub)
        store.emit("customer.subscription.updated", sub, diff(before, sub))


# --- 3-D Secure ---------------------------------------------------------------------------------


def new_challenge(
    store: Store,
    *,
    purpose: str,
    target: str,
    amount: int,
    currency: str,
    card: dict[str, Any] | None = None,
    payment_method: str | None = None,
    terms_accepted: bool = False,
) -> dict[str, Any]:
    """A pending challenge for paying `target` (a checkout session id, or a hosted invoice
    link's token) with `card` (number and expiry, not yet a payment method) or a saved
    `payment_method`."""
    challenge = {
        "id": new_id("sandbox_3ds_"),
        "object": CHALLENGE,
        "created": store.now(),
        "purpose": purpose,
        "target": target,
        "amount": amount,
        "currency": currency,
        "card": card,
        "payment_method": payment_method,
        # The buyer ticked the Checkout page's terms checkbox before the bank's challenge.
        "terms_accepted": terms_accepted,
        "status": "pending",
    }
    store.save(challenge)
    return challenge


def get_challenge(store: Store, challenge_id: str, *, for_update: bool = False):
    challenge = store.find(challenge_id, for_update=for_update)
    if challenge is None or challenge.get("object") != CHALLENGE:
        return None
    return challenge


def use_challenge(store: Store, challenge: dict[str, Any], outcome: str) -> None:
    """A challenge answers once: a second answer (a double click, the back button) finds it
    used."""
    challenge["status"] = outcome
    store.save(challenge)


def fail_invoice_authentication(store: Store, invoice: dict[str, Any], pm: dict[str, Any]):
    """The customer failed the challenge on the hosted invoice page: the invoice stays open."""
    if invoice["status"] == "open" and invoice.get("_payment_intent"):
        fail_authentication(store, invoice, pm)
