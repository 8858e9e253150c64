"""Subscriptions: reading our copy of them, and storing Stripe's state of one."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select, update

from webapp.billing.base import (
    LIVE_STATUSES,
    NoBillingAccount,
    call_stripe,
    dig,
    from_timestamp,
    id_of,
)
from webapp.billing.credits import top_up_after_upgrade
from webapp.catalog import UnknownPlan, get_catalog
from webapp.database import insert_or_ignore
from webapp.extensions import db
from webapp.models import Subscription, User
from webapp.models.base import utcnow
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


def latest_subscription(user_id: int) -> Subscription | None:
    return db.session.scalar(
        select(Subscription)
        .where(Subscription.user_id == user_id)
        .order_by(Subscription.created_at.desc(), Subscription.id.desc())
        .limit(1)
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


def create_portal_session(user: User, return_url: str) -> str:
    """A Stripe customer-portal URL for the user; NoBillingAccount if they never bought."""
    if not user.stripe_customer_id:
        raise NoBillingAccount("You have no billing account yet. Choose a plan first.")
    portal = call_stripe(
        get_gateway().create_portal_session,
        customer_id=user.stripe_customer_id,
        return_url=return_url,
    )
    return portal.url


# --- Reading from Stripe (before any write: see the module docstring) --------------------------


def fetch_subscription(subscription_id: str) -> Any:
    return call_stripe(get_gateway().retrieve_subscription, subscription_id)


def fetch_invoice(invoice_id: str) -> tuple[Any, Any | None]:
    """An invoice and the current state of its subscription (None for a one-off invoice)."""
    invoice = call_stripe(get_gateway().retrieve_invoice, invoice_id)
    subscription_id = _invoice_subscription_id(invoice)
    return invoice, fetch_subscription(subscription_id) if subscription_id else None


def _invoice_subscription_id(invoice: Any) -> str | None:
    return id_of(dig(invoice, "parent", "subscription_details", "subscription"))


def _user_for_customer(customer_id: str, metadata: Any) -> int | None:
    user_id = db.session.scalar(select(User.id).where(User.stripe_customer_id == customer_id))
    if user_id is not None:
        return user_id
    # A customer we have not linked yet (e.g. the webhook raced the checkout page): trust only
    # the metadata we set ourselves when creating the session.
    raw = dig(metadata, "user_id")
    if raw and str(raw).isdigit() and db.session.get(User, int(raw)) is not None:
        return int(raw)
    return None


def _plan_and_cycle(stripe_subscription: Any) -> tuple[str, str]:
    item = stripe_subscription["items"]["data"][0]
    lookup_key = dig(item, "price", "lookup_key")
    catalog = get_catalog()
    try:
        price = catalog.price_by_lookup_key(lookup_key or "")
    except UnknownPlan:
        # The lookup key moved to a newer price (catalog sync); our metadata still names the plan.
        metadata = stripe_subscription.metadata
        price = catalog.price(dig(metadata, "plan") or "", dig(metadata, "cycle") or "monthly")
    return price.plan_id, price.cycle


def store_subscription(stripe_subscription: Any) -> Subscription | None:
    """Store a subscription's current state as read from Stripe; top up credits on upgrade."""
    subscription_id = stripe_subscription.id
    customer_id = id_of(stripe_subscription.customer)
    user_id = _user_for_customer(customer_id, stripe_subscription.metadata)
    if user_id is None:
        log.warning("subscription %s belongs to no user of ours; ignored", subscription_id)
        return None
    plan_id, cycle = _plan_and_cycle(stripe_subscription)
    item = stripe_subscription["items"]["data"][0]
    state = {
        "user_id": user_id,
        "stripe_customer_id": customer_id,
        "stripe_price_id": item["price"]["id"],
        "plan_id": plan_id,
        "cycle": cycle,
        "status": stripe_subscription.status,
        "current_period_start": from_timestamp(dig(item, "current_period_start")),
        "current_period_end": from_timestamp(dig(item, "current_period_end")),
        "cancel_at_period_end": bool(stripe_subscription.cancel_at_period_end),
    }
    row = _upsert_subscription(subscription_id, state)
    db.session.execute(
        update(User)
        .where(User.id == user_id, User.stripe_customer_id.is_(None))
        .values(stripe_customer_id=customer_id)
    )
    db.session.flush()
    top_up_after_upgrade(row)
    return row


def _upsert_subscription(subscription_id: str, state: dict[str, Any]) -> Subscription:
    """Our row for a subscription, updated to `state` (a racing insert of the same id is fine)."""
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
    if state["status"] != "past_due":
        row.past_due_since = None
    elif row.status != "past_due":
        row.past_due_since = utcnow()  # the grace period starts now
    for name, value in state.items():
        setattr(row, name, value)
    return row
