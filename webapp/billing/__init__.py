"""Billing use cases shared by the pages, the webhooks and the API.

The one place that writes subscription, checkout and credit state. Two rules run through it:

- Stripe is the source of truth. Every handler re-reads the object it is about from Stripe, so the
  order in which events arrive does not matter, and the success page and the webhook fulfil through
  the same idempotent functions.
- Never hold a database transaction open across a call to Stripe (`base.call_stripe`).

Modules: `checkout` (customers, Checkout Sessions, the success page), `subscriptions` (our copy of
Stripe's subscriptions), `credits` (the ledger), `events` (webhook events, at most once).
"""

from webapp.billing.base import (
    LIVE_STATUSES,
    BillingError,
    CatalogMismatch,
    CheckoutNotFound,
    NoBillingAccount,
    SubscriptionExists,
)
from webapp.billing.checkout import (
    CheckoutStart,
    Fulfilment,
    ensure_customer,
    fulfil_checkout,
    start_checkout,
)
from webapp.billing.credits import (
    CreditSummary,
    add_months,
    credit_summary,
    grant_credits,
    grant_due_credits,
    top_up_after_upgrade,
)
from webapp.billing.events import EventOutcome, failed_event_ids, process_event, replay_event
from webapp.billing.subscriptions import (
    create_portal_session,
    has_access,
    latest_subscription,
    live_subscription,
)

__all__ = [
    "LIVE_STATUSES",
    "BillingError",
    "CatalogMismatch",
    "CheckoutNotFound",
    "CheckoutStart",
    "CreditSummary",
    "EventOutcome",
    "Fulfilment",
    "NoBillingAccount",
    "SubscriptionExists",
    "add_months",
    "create_portal_session",
    "credit_summary",
    "ensure_customer",
    "failed_event_ids",
    "fulfil_checkout",
    "grant_credits",
    "grant_due_credits",
    "has_access",
    "latest_subscription",
    "live_subscription",
    "process_event",
    "replay_event",
    "start_checkout",
    "top_up_after_upgrade",
]
