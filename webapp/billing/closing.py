"""Closing a member's billing when they delete their account.

The invariant: once `close_billing_account` returns, Stripe holds no live subscription and no
personal data of the member, and will never charge them again; our records of what they paid
(subscriptions, invoices, the credits ledger) stay as they are, as accounting records.

What Stripe does, and so what we ask of it:

- `DELETE /v1/subscriptions/{id}` "cancels a customer's subscription immediately"; with
  `prorate` and `invoice_now` left false (their defaults) no credit for the unused time and no
  final invoice are made, and pending prorations are dropped (API reference, "Cancel a
  subscription"; SDK `params/_subscription_cancel_params.py`). A deleted account cannot use the
  rest of its period, and nothing is refunded automatically: the deletion page says so, and
  points people who want the period to "Manage billing → cancel at period end" instead.
- `DELETE /v1/customers/{id}` "permanently deletes a customer ... also immediately cancels any
  active subscriptions", "removes all credit card details", and the customer then retrieves as
  `{"deleted": true}` (API reference, "Delete a customer"; fixtures3.json). Stripe keeps the
  customer's invoices and payments, which are its own accounting records. We cancel the
  subscriptions ourselves first all the same, to say `prorate=false` and why.

Both are DELETEs, idempotent by definition: a retry after a crash finds the subscription
canceled (`resource_missing`) or the customer deleted, and carries on. Nothing here writes our
tables; `apply_closed_billing` stores what Stripe now says, in the deletion's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy import select

from webapp.billing.base import call_stripe
from webapp.billing.errors import provider_errors
from webapp.billing.stripe_facts import SubscriptionFacts
from webapp.billing.sync import apply_subscription_state, fetch_subscription_state
from webapp.extensions import db
from webapp.models import CheckoutSession, Subscription, User
from webapp.stripe_gateway import InvalidRequest, get_gateway

log = logging.getLogger(__name__)

# Every status in which Stripe may still bill (or start billing) a subscription.
ENDED_STATUSES = frozenset({"canceled", "incomplete_expired"})
CANCELLATION_COMMENT = "The customer deleted their account."


def customers_of(user_id: int) -> list[str]:
    """Every Stripe customer the member has had: the linked one and any of their subscriptions'
    (a customer Stripe deleted earlier is unlinked, but its subscriptions still name it)."""
    linked = db.session.scalar(select(User.stripe_customer_id).where(User.id == user_id))
    named = db.session.scalars(
        select(Subscription.stripe_customer_id).where(Subscription.user_id == user_id)
    )
    return sorted({customer for customer in (linked, *named) if customer})


@provider_errors
def close_billing_account(user_id: int) -> list[SubscriptionFacts]:
    """At Stripe (network only): expire open checkouts, cancel every subscription that is not
    over, at once and without proration, and delete the customers. Returns the cancelled
    subscriptions as Stripe now has them, for `apply_closed_billing`.

    Raises billing's PaymentProviderError when Stripe fails; a retry is safe.
    """
    gateway = get_gateway()
    _expire_open_checkouts(user_id)
    cancelled: list[SubscriptionFacts] = []
    for customer_id in customers_of(user_id):
        if call_stripe(gateway.customer_is_deleted, customer_id):
            continue  # Stripe ended its subscriptions when it deleted it
        for subscription in call_stripe(gateway.list_subscriptions, customer_id):
            if subscription.status in ENDED_STATUSES:
                continue
            _cancel_now(subscription.id)
            cancelled.append(fetch_subscription_state(subscription.id))
        call_stripe(gateway.delete_customer, customer_id)
        log.info("billing closed for user %s: customer %s deleted", user_id, customer_id)
    return cancelled


def _cancel_now(subscription_id: str) -> None:
    try:
        call_stripe(
            get_gateway().cancel_subscription,
            subscription_id,
            prorate=False,
            invoice_now=False,
            cancellation_details={"comment": CANCELLATION_COMMENT},
        )
    except InvalidRequest as exc:
        # Canceled meanwhile (a retry, or the clock ended it): what we wanted.
        if exc.code != "resource_missing":
            raise


def _expire_open_checkouts(user_id: int) -> None:
    """A Checkout page left open in another tab must not start a plan after the deletion."""
    gateway = get_gateway()
    open_sessions = db.session.scalars(
        select(CheckoutSession.stripe_session_id).where(
            CheckoutSession.user_id == user_id, CheckoutSession.status == "open"
        )
    ).all()
    for session_id in open_sessions:
        session = call_stripe(gateway.retrieve_checkout_session, session_id)
        if session.status == "open":
            call_stripe(gateway.expire_checkout_session, session_id)


def apply_closed_billing(cancelled: Iterable[SubscriptionFacts]) -> None:
    """Store the cancelled subscriptions as Stripe has them (in the caller's transaction), so our
    records say "canceled" at once, whenever their webhooks arrive; the same idempotent code
    as the webhooks, so whichever comes first does the work."""
    for facts in cancelled:
        apply_subscription_state(facts)
