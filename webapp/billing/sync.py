"""Bringing our records in line with Stripe: read (network) first, then apply (database).

Each `fetch_*` reads everything its `apply_*` needs, with no transaction of ours open; each
`apply_*` writes in the caller's transaction and never calls Stripe. The webhook events, the
success page and the checkout start all go through these, so whichever arrives first does the
work and the rest find nothing left to do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from webapp.billing.credits import Cause, settle_subscription
from webapp.billing.duplicates import resolve_duplicates
from webapp.billing.invoices import store_invoice
from webapp.billing.packs import settle_pack_invoice
from webapp.billing.stripe_facts import (
    InvoiceFacts,
    SubscriptionFacts,
    fetch_invoice_facts,
    fetch_subscription_facts,
)
from webapp.billing.subscriptions import store_subscription, user_for_customer
from webapp.billing.trials import grant_trial_credits
from webapp.database import lock_row
from webapp.models import Subscription, User

log = logging.getLogger(__name__)


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
    user_id = _lock_member(facts.customer_id, facts.metadata)
    if user_id is None:
        log.warning("subscription %s belongs to no user of ours; ignored", facts.id)
        return None
    row = store_subscription(facts, user_id)
    grant_trial_credits(facts, user_id)
    settle_subscription(facts.id, user_id)
    return row


def fetch_invoice_state(invoice_id: str) -> InvoiceState:
    invoice = fetch_invoice_facts(invoice_id)
    subscription = (
        fetch_subscription_facts(invoice.subscription_id) if invoice.subscription_id else None
    )
    return InvoiceState(invoice, subscription)


def apply_invoice_state(state: InvoiceState, cause: Cause | None = None) -> None:
    """Store the invoice (what was paid, what went back) and settle the credits it bought."""
    facts = state.invoice
    metadata = state.subscription.metadata if state.subscription else {}
    user_id = _lock_member(facts.customer_id, metadata)
    if user_id is None:
        return  # not one of our members
    if state.subscription is not None:
        store_subscription(state.subscription, user_id)
        grant_trial_credits(state.subscription, user_id)
    if facts.subscription_id is None:
        # Not a subscription invoice: a credit pack's, if it bought one (billing/packs.py).
        settle_pack_invoice(facts, user_id, cause.kind if cause else None)
        return
    store_invoice(facts, user_id)
    settle_subscription(facts.subscription_id, user_id, cause=cause)


def _lock_member(customer_id: str, metadata: dict[str, str]) -> int | None:
    """Find the member behind a Stripe customer and lock them before writing anything of theirs:
    every writer takes the member first, then their subscription and invoice rows, so two
    writers never wait on each other in opposite orders."""
    user_id = user_for_customer(customer_id, metadata)
    if user_id is not None:
        lock_row(User, user_id)
    return user_id
