"""At most one live subscription per user, even when two checkouts were paid at once.

Checkout starts are serialised per user and refused when Stripe already shows a live
subscription (see checkout.py), but two tabs can still each pay a session before either
webhook arrives. Then the oldest subscription (by Stripe's `created`, then id) is kept and every
newer one is cancelled at once and refunded in full; the refund's events take back the credits
it bought, like any refund. Every step is idempotent, so the two subscriptions' events, arriving
together or again, decide the same thing and do it once.
"""

from __future__ import annotations

import logging
from typing import Any

from webapp.billing.base import LIVE_STATUSES, call_stripe, id_of
from webapp.billing.invoices import invoice_sequence
from webapp.billing.stripe_facts import invoice_subscription_id
from webapp.stripe_gateway import InvalidRequest, get_gateway

log = logging.getLogger(__name__)


def resolve_duplicates(customer_id: str) -> dict[str, str]:
    """Cancel and refund the customer's newer live subscriptions at Stripe (network only).

    Returns {cancelled subscription id: the id of the one kept}.
    """
    live = live_at_stripe(customer_id)
    if len(live) < 2:
        return {}
    first_invoice = _first_invoice_numbers(customer_id)
    # Stripe's `created` counts seconds; two tabs paying in one second are told apart by the
    # customer's invoice numbers, which Stripe counts up per customer.
    kept = min(live, key=lambda s: (s.created, first_invoice.get(s.id, 0), s.id))
    cancelled = {}
    for duplicate in live:
        if duplicate.id == kept.id:
            continue
        log.warning(
            "customer %s has two live subscriptions: cancelling %s, keeping %s",
            customer_id,
            duplicate.id,
            kept.id,
        )
        _cancel(duplicate, kept.id)
        _refund_paid_invoices(customer_id, duplicate.id)
        cancelled[duplicate.id] = kept.id
    return cancelled


def live_at_stripe(customer_id: str) -> list[Any]:
    """The customer's subscriptions in a live status, as Stripe has them now (network)."""
    subscriptions = call_stripe(get_gateway().list_subscriptions, customer_id)
    return [s for s in subscriptions if s.status in LIVE_STATUSES]


def _first_invoice_numbers(customer_id: str) -> dict[str, int]:
    """{subscription id: the sequence number of its first invoice} for the customer."""
    numbers: dict[str, int] = {}
    for invoice in call_stripe(get_gateway().list_invoices, customer_id, 100):
        subscription_id, sequence = (
            invoice_subscription_id(invoice),
            invoice_sequence(invoice.number),
        )
        if subscription_id and sequence:
            numbers[subscription_id] = min(numbers.get(subscription_id, sequence), sequence)
    return numbers


def _cancel(subscription: Any, kept_id: str) -> None:
    gateway = get_gateway()
    # Said on the subscription itself, so whichever event stores it later knows (store_subscription
    # reads it into `duplicate_of`) and the pages can tell the buyer what happened.
    call_stripe(gateway.update_subscription, subscription.id, metadata={"duplicate_of": kept_id})
    try:
        call_stripe(
            gateway.cancel_subscription,
            subscription.id,
            idempotency_key=f"duplicate-cancel-{subscription.id}",
            prorate=False,
            cancellation_details={"comment": "A second subscription paid by mistake."},
        )
    except InvalidRequest as exc:
        # A redelivered event finds it cancelled already (after the idempotency key expired).
        if exc.code != "resource_missing":
            raise


def _refund_paid_invoices(customer_id: str, subscription_id: str) -> None:
    gateway = get_gateway()
    invoices = call_stripe(gateway.list_invoices, customer_id, subscription_id=subscription_id)
    for invoice in invoices:
        if invoice_subscription_id(invoice) != subscription_id or invoice.status != "paid":
            continue
        for payment in call_stripe(gateway.invoice_payments, invoice.id):
            payment_intent = id_of(payment.payment.payment_intent)
            if payment.status != "paid" or not payment_intent:
                continue
            try:
                call_stripe(
                    gateway.create_refund,
                    payment_intent_id=payment_intent,
                    reason="duplicate",
                    metadata={"reason": "duplicate_subscription", "subscription": subscription_id},
                    idempotency_key=f"duplicate-refund-{payment_intent}",
                )
            except InvalidRequest as exc:
                if exc.code != "charge_already_refunded":
                    raise
