"""Billing use cases shared by the pages, the webhooks and the API.

The one place that writes subscription, checkout and credit state. Two rules run through it:

- Stripe is the source of truth. Every handler re-reads the object it is about from Stripe, so the
  order in which events arrive does not matter, and the success page and the webhook fulfil through
  the same idempotent functions.
- Never hold a database transaction open across a call to Stripe (`base.call_stripe`).

Modules: `checkout` (customers, Checkout Sessions, the success page), `subscriptions` and
`invoices` (our copies of Stripe's), `credits` (the ledger, settled to what invoices bought; the
arithmetic in `credit_months`), `duplicates` (one live subscription per user), `stripe_facts`
(reading Stripe), `sync` (read, then apply), `leases` (locks held across Stripe calls) and
`events` (webhooks, each applied at most once), `packs` (credit packs, bought once each),
`errors` (what Stripe answered, as billing's own exceptions: callers never import the gateway's).
"""

from webapp.billing.base import (
    LIVE_STATUSES,
    BillingError,
    CatalogMismatch,
    CheckoutBusy,
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
from webapp.billing.credits import CreditSummary, credit_summary, grant_due_credits
from webapp.billing.errors import CardDeclined, PaymentProviderError, ProviderUnavailable
from webapp.billing.events import (
    EventOutcome,
    Receipt,
    claim_stale_events,
    claim_undispatched_events,
    failed_event_ids,
    process_event,
    process_stored_event,
    record_received,
    release_claims,
    replay_event,
    schedule_retry,
)
from webapp.billing.packs import PackCheckoutStart, fulfil_pack_checkout, start_pack_checkout
from webapp.billing.subscriptions import (
    create_portal_session,
    has_access,
    latest_subscription,
    live_subscription,
    live_subscription_snapshot,
    recent_duplicates,
)

__all__ = [
    "LIVE_STATUSES",
    "BillingError",
    "CardDeclined",
    "CatalogMismatch",
    "CheckoutBusy",
    "CheckoutNotFound",
    "CheckoutStart",
    "CreditSummary",
    "EventOutcome",
    "Fulfilment",
    "NoBillingAccount",
    "PackCheckoutStart",
    "PaymentProviderError",
    "ProviderUnavailable",
    "Receipt",
    "SubscriptionExists",
    "claim_stale_events",
    "claim_undispatched_events",
    "create_portal_session",
    "credit_summary",
    "ensure_customer",
    "failed_event_ids",
    "fulfil_checkout",
    "fulfil_pack_checkout",
    "grant_due_credits",
    "has_access",
    "latest_subscription",
    "live_subscription",
    "live_subscription_snapshot",
    "process_event",
    "process_stored_event",
    "recent_duplicates",
    "record_received",
    "release_claims",
    "replay_event",
    "schedule_retry",
    "start_checkout",
    "start_pack_checkout",
]
