"""Checkout: one Stripe customer per user, Checkout Sessions, and fulfilment on the success page."""

from __future__ import annotations

import contextlib
import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from webapp.billing.base import (
    CatalogMismatch,
    CheckoutNotFound,
    SubscriptionExists,
    call_stripe,
    from_timestamp,
    id_of,
)
from webapp.billing.credits import grant_invoice_credits
from webapp.billing.subscriptions import live_subscription, store_subscription
from webapp.catalog import Plan, Price, get_catalog
from webapp.extensions import db
from webapp.models import CheckoutSession, CreditEntry, User
from webapp.models.base import utcnow
from webapp.stripe_gateway import InvalidRequest, get_gateway

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckoutStart:
    session_id: str
    url: str
    plan: Plan
    price: Price


@dataclass(frozen=True)
class Fulfilment:
    """What the success page tells the buyer."""

    status: str  # "complete", "processing", "open" or "expired"
    plan: Plan | None
    credits_granted: int


# --- Checkout ---------------------------------------------------------------------------------


def ensure_customer(user: User) -> str:
    """The user's one Stripe customer, created the first time and reused forever.

    Two racing requests send the same idempotency key, so Stripe makes one customer; the
    compare-and-set below stores it once.
    """
    if user.stripe_customer_id:
        return user.stripe_customer_id
    user_id, email, generation = user.id, user.email, user.stripe_customer_generation
    customer = call_stripe(
        get_gateway().create_customer,
        email=email,
        user_id=user_id,
        idempotency_key=f"customer-user-{user_id}-gen-{generation}",
    )
    db.session.execute(
        update(User)
        .where(User.id == user_id, User.stripe_customer_id.is_(None))
        .values(stripe_customer_id=customer.id)
    )
    db.session.commit()
    db.session.refresh(user)
    return user.stripe_customer_id or customer.id


def start_checkout(
    user: User, plan_id: str, cycle: str, *, success_url: str, cancel_url: str
) -> CheckoutStart:
    """A Checkout Session for `plan_id`/`cycle`: reused if one is open, else a new one.

    Raises UnknownPlan, SubscriptionExists, CatalogMismatch or the gateway's PaymentProviderError.
    """
    catalog = get_catalog()
    plan = catalog.plan(plan_id)
    price = plan.price(cycle)
    if live_subscription(user.id) is not None:
        raise SubscriptionExists("You already have a subscription. Change plans in Manage billing.")
    # The key counts this user's sessions *before* looking for an open one: a racing request that
    # records its session in between is then found below, or else both send the same key.
    idempotency_key = _checkout_idempotency_key(user.id, plan_id, cycle, success_url, cancel_url)
    reusable = _reuse_or_expire_open_session(user.id, plan_id, cycle)
    if reusable is not None:
        return CheckoutStart(reusable.stripe_session_id, reusable.url, plan, price)
    customer_id = ensure_customer(user)
    stripe_price = call_stripe(get_gateway().price_for, price.lookup_key)
    if stripe_price.unit_amount != price.amount_cents or stripe_price.currency != price.currency:
        log.error(
            "Stripe price %s does not match the catalog; run stripe sync-catalog", price.lookup_key
        )
        raise CatalogMismatch("This plan is briefly unavailable. Please try again later.")
    session = call_stripe(
        get_gateway().create_checkout_session,
        customer_id=customer_id,
        price_id=stripe_price.id,
        user_id=user.id,
        plan_id=plan_id,
        cycle=cycle,
        success_url=success_url,
        cancel_url=cancel_url,
        idempotency_key=idempotency_key,
    )
    _record_checkout_session(user.id, plan_id, cycle, session)
    log.info("checkout session %s created for user %s (%s)", session.id, user.id, price.lookup_key)
    return CheckoutStart(session.id, session.url, plan, price)


def _checkout_idempotency_key(user_id: int, plan_id: str, cycle: str, *urls: str) -> str:
    # A double click sends the same key (one session); a later checkout, after the previous one
    # was completed or expired, counts one more session and so gets a new key.
    attempts = db.session.scalar(
        select(func.count()).select_from(CheckoutSession).where(CheckoutSession.user_id == user_id)
    )
    urls_digest = hashlib.sha256("\n".join(urls).encode()).hexdigest()[:16]
    return f"checkout-{user_id}-{attempts}-{plan_id}-{cycle}-{urls_digest}"


def _reuse_or_expire_open_session(user_id: int, plan_id: str, cycle: str) -> CheckoutSession | None:
    """At most one open session per user: the same plan reuses it, another plan expires it."""
    now = utcnow()
    open_sessions = db.session.scalars(
        select(CheckoutSession).where(
            CheckoutSession.user_id == user_id, CheckoutSession.status == "open"
        )
    ).all()
    for row in open_sessions:
        still_valid = row.expires_at is None or row.expires_at > now + timedelta(minutes=5)
        if still_valid and row.plan_id == plan_id and row.cycle == cycle:
            return row
    for row in open_sessions:
        session_id = row.stripe_session_id
        # Already completed or expired at Stripe: nothing left to expire.
        with contextlib.suppress(InvalidRequest):
            call_stripe(get_gateway().expire_checkout_session, session_id)
        db.session.execute(
            update(CheckoutSession)
            .where(CheckoutSession.stripe_session_id == session_id)
            .values(status="expired")
        )
        db.session.commit()
    return None


def _record_checkout_session(user_id: int, plan_id: str, cycle: str, session: Any) -> None:
    row = CheckoutSession(
        user_id=user_id,
        stripe_session_id=session.id,
        plan_id=plan_id,
        cycle=cycle,
        status="open",
        url=session.url,
        expires_at=from_timestamp(session.expires_at),
    )
    db.session.add(row)
    try:
        db.session.commit()
    except IntegrityError:
        # A concurrent double click got the same session (same idempotency key) and saved it.
        db.session.rollback()


def fulfil_checkout(session_id: str, *, user_id: int) -> Fulfilment:
    """The success page: check ownership, then fulfil exactly as the webhook does."""
    row = db.session.scalar(
        select(CheckoutSession).where(CheckoutSession.stripe_session_id == session_id)
    )
    if row is None or row.user_id != user_id:
        raise CheckoutNotFound("No such checkout session.")
    plan = get_catalog().plan(row.plan_id)
    session = fetch_checkout_session(session_id)
    if session.client_reference_id != str(user_id):
        raise CheckoutNotFound("No such checkout session.")
    apply_checkout_session(session)
    db.session.commit()
    if session.status == "complete" and session.payment_status in ("paid", "no_payment_required"):
        return Fulfilment("complete", plan, _credits_for_invoice(id_of(session.invoice)))
    if session.status == "complete":
        return Fulfilment("processing", plan, 0)
    return Fulfilment(session.status, plan, 0)


def fetch_checkout_session(session_id: str) -> Any:
    return call_stripe(
        get_gateway().retrieve_checkout_session, session_id, expand=["subscription", "invoice"]
    )


def _credits_for_invoice(invoice_id: str | None) -> int:
    if invoice_id is None:
        return 0
    amount = db.session.scalar(
        select(CreditEntry.amount).where(CreditEntry.grant_key == f"invoice:{invoice_id}")
    )
    return amount or 0


def apply_checkout_session(session: Any) -> None:
    """Record the session's status and, once paid, its subscription and first credits."""
    db.session.execute(
        update(CheckoutSession)
        .where(
            CheckoutSession.stripe_session_id == session.id, CheckoutSession.status != "complete"
        )
        .values(status=session.status)
    )
    if session.status != "complete" or session.payment_status not in (
        "paid",
        "no_payment_required",
    ):
        return
    subscription = session.subscription
    if subscription is None or isinstance(subscription, str):
        return  # not expanded: the subscription events will bring it
    row = store_subscription(subscription)
    invoice = session.invoice
    if row is not None and invoice is not None and not isinstance(invoice, str):
        grant_invoice_credits(invoice, row)
