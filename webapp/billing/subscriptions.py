"""Subscriptions: reading our copy of them, and storing Stripe's state of one."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select, update

from webapp.billing.base import LIVE_STATUSES, CatalogMismatch, NoBillingAccount, call_stripe
from webapp.billing.errors import provider_errors
from webapp.billing.stripe_facts import SubscriptionFacts
from webapp.database import insert_or_ignore
from webapp.extensions import db
from webapp.models import Subscription, User
from webapp.models.base import utcnow
from webapp.stripe_catalog import PORTAL_MARKER
from webapp.stripe_gateway import get_gateway

log = logging.getLogger(__name__)


# --- Reading state ---------------------------------------------------------------------------


def live_subscription(user_id: int) -> Subscription | None:
    """The user's subscription in a live status (active, trialing, past_due), if any."""
    return db.session.scalar(
        select(Subscription)
        .where(Subscription.user_id == user_id, Subscription.status.in_(LIVE_STATUSES))
        .order_by(Subscription.created_at.desc())
        .limit(1)
    )


def live_subscription_snapshot(user_id: int) -> Subscription | None:
    """A read-only copy of `live_subscription`, from the member cache: for answers that only show
    it (the API's current subscription), never to write. The cache drops it as soon as the
    database reports a change to the member's subscriptions; `has_access` on it still reads the
    clock at each call."""
    from webapp import member_cache  # the cache's change feed needs the app: imported late

    columns = member_cache.cached(user_id, "live subscription", lambda: _live_columns(user_id))
    return Subscription(**columns) if columns is not None else None  # transient: no session


def _live_columns(user_id: int) -> dict[str, Any] | None:
    row = live_subscription(user_id)
    if row is None:
        return None
    return {column.key: getattr(row, column.key) for column in Subscription.__mapper__.column_attrs}


def latest_subscription(user_id: int) -> Subscription | None:
    return db.session.scalar(
        select(Subscription)
        .where(Subscription.user_id == user_id)
        .order_by(Subscription.created_at.desc(), Subscription.id.desc())
        .limit(1)
    )


def recent_duplicates(user_id: int, days: int = 60) -> list[Subscription]:
    """Subscriptions cancelled and refunded in the last `days` because one was live already."""
    since = utcnow() - timedelta(days=days)
    return list(
        db.session.scalars(
            select(Subscription)
            .where(
                Subscription.user_id == user_id,
                Subscription.duplicate_of.is_not(None),
                Subscription.created_at >= since,
            )
            .order_by(Subscription.created_at.desc())
        )
    )


def has_access(subscription: Subscription | None, now: datetime | None = None) -> bool:
    """Active and trialing: yes. Past due: during the grace period. Anything else: no."""
    if subscription is None:
        return False
    if subscription.status in ("active", "trialing"):
        return True
    if subscription.status == "past_due":
        grace = timedelta(days=current_app.config["PAST_DUE_GRACE_DAYS"])
        since = subscription.past_due_since or subscription.updated_at
        return (now or utcnow()) < since + grace
    return False


@provider_errors
def create_portal_session(user: User, return_url: str) -> str:
    """A Stripe customer-portal URL for the user, on the portal configuration the catalog sync
    made (so the portal follows the plan-change policy).

    NoBillingAccount if they never bought; CatalogMismatch if Stripe has no such configuration.
    """
    if not user.stripe_customer_id:
        raise NoBillingAccount("You have no billing account yet. Choose a plan first.")
    gateway = get_gateway()
    configuration_id = call_stripe(gateway.managed_portal_configuration_id, PORTAL_MARKER)
    if configuration_id is None:
        log.error("no billing-portal configuration of ours on Stripe; run stripe sync-catalog")
        raise CatalogMismatch("Billing management is briefly unavailable. Please try again later.")
    portal = call_stripe(
        gateway.create_portal_session,
        customer_id=user.stripe_customer_id,
        return_url=return_url,
        configuration_id=configuration_id,
    )
    return portal.url


# --- Writing state (no commits here: the caller's transaction holds the event's effects) -------


def user_for_customer(customer_id: str, metadata: dict[str, str]) -> int | None:
    """Our user behind a Stripe customer."""
    user_id = db.session.scalar(select(User.id).where(User.stripe_customer_id == customer_id))
    if user_id is not None:
        return user_id
    # A customer we have not linked yet (e.g. the webhook raced the checkout page): trust only
    # the metadata we set ourselves when creating the session.
    raw = metadata.get("user_id")
    if raw and str(raw).isdigit() and db.session.get(User, int(raw)) is not None:
        return int(raw)
    return None


def store_subscription(facts: SubscriptionFacts, user_id: int) -> Subscription | None:
    """Store a subscription's state as read from Stripe, unless we hold a later read of it.

    The caller has found the member (`user_for_customer`) and holds their lock.
    """
    price = facts.price
    if price.plan_id is None or price.cycle is None:
        log.error("subscription %s is on price %s, not one of our plans", facts.id, price.id)
        return None
    pending = facts.pending
    state = {
        "user_id": user_id,
        "stripe_customer_id": facts.customer_id,
        "stripe_price_id": price.id,
        "plan_id": price.plan_id,
        "cycle": price.cycle,
        "status": facts.status,
        "current_period_start": facts.period_start,
        "current_period_end": facts.period_end,
        "cancel_at_period_end": facts.cancel_at_period_end,
        "cancel_at": facts.cancel_at,
        "ended_at": facts.ended_at,
        "schedule_id": facts.schedule_id,
        "pending_plan_id": pending.plan_id if pending else None,
        "pending_cycle": pending.cycle if pending else None,
        "pending_change_at": pending.at if pending else None,
        "duplicate_of": facts.duplicate_of,
        "trial_start": facts.trial_start,
        "trial_end": facts.trial_end,
        "synced_at": facts.fetched_at,
    }
    row = _upsert_subscription(facts.id, state)
    if facts.status in LIVE_STATUSES:
        # Link the customer only from a live subscription: a late event about an ended one of a
        # deleted customer must not bring that customer back.
        db.session.execute(
            update(User)
            .where(User.id == user_id, User.stripe_customer_id.is_(None))
            .values(stripe_customer_id=facts.customer_id)
        )
    db.session.flush()
    return row


def _upsert_subscription(subscription_id: str, state: dict[str, Any]) -> Subscription:
    """Our row for a subscription, updated to `state` unless it holds a later read."""
    past_due_since = utcnow() if state["status"] == "past_due" else None
    values = {"stripe_subscription_id": subscription_id, "past_due_since": past_due_since, **state}
    inserted = insert_or_ignore(Subscription, values, ["stripe_subscription_id"])
    row = db.session.scalars(
        select(Subscription)
        .where(Subscription.stripe_subscription_id == subscription_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if inserted:
        return row
    if row.synced_at is not None and state["synced_at"] < row.synced_at:
        return row  # a worker that read Stripe after us has stored what it saw: keep it
    if state["status"] != "past_due":
        row.past_due_since = None
    elif row.status != "past_due":
        row.past_due_since = utcnow()  # the grace period starts now
    for name, value in state.items():
        setattr(row, name, value)
    return row
