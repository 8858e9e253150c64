"""Bringing our records in line with Stripe: read (network) first, then apply (database).

Each `fetch_*` reads everything its `apply_*` needs, with no transaction of ours open; each
`apply_*` writes in the caller's transaction and never calls Stripe. The webhook events, the
success page and the checkout start all go through these, so whichever arrives first does the
work and the rest find nothing left to do.
"""

from __future__ import annotations

from dataclasses import dataclass

from webapp.billing.credits import settle_subscription, store_invoice
from webapp.billing.duplicates import resolve_duplicates
from webapp.billing.stripe_facts import (
    InvoiceFacts,
    SubscriptionFacts,
    fetch_invoice_facts,
    fetch_subscription_facts,
)
from webapp.billing.subscriptions import store_subscription, user_for_customer
from webapp.models import Subscription


@dataclass(frozen=True)
class InvoiceState:
    invoice: InvoiceFacts
    subscription: SubscriptionFacts | None


def fetch_subscription_state(subscription_id: str, *, new: bool = False) -> SubscriptionFacts:
    """A subscription as Stripe has it now; for a `new` one, after settling duplicates first."""
    facts = fetch_subscription_facts(subscription_id)
    if new and resolve_duplicates(facts.customer_id).get(subscription_id):
        facts = fetch_subscription_facts(subscription_id)  # it was just cancelled
    return facts


def apply_subscription_state(facts: SubscriptionFacts) -> Subscription | None:
    """Store the subscription, then settle its credits (its periods or its end may have moved)."""
    row = store_subscription(facts)
    if row is not None:
        settle_subscription(row.stripe_subscription_id, row.user_id)
    return row


def fetch_invoice_state(invoice_id: str) -> InvoiceState:
    invoice = fetch_invoice_facts(invoice_id)
    subscription = (
        fetch_subscription_facts(invoice.subscription_id) if invoice.subscription_id else None
    )
    return InvoiceState(invoice, subscription)


def apply_invoice_state(state: InvoiceState) -> None:
    """Store the invoice (what was paid, what went back) and settle the credits it bought."""
    if state.subscription is not None:
        store_subscription(state.subscription)
    facts = state.invoice
    metadata = state.subscription.metadata if state.subscription else {}
    user_id = user_for_customer(facts.customer_id, metadata)
    if user_id is None or facts.subscription_id is None:
        return  # not one of our members, or not a subscription invoice (nothing to grant)
    store_invoice(facts, user_id)
    settle_subscription(facts.subscription_id, user_id)
