"""Checkout: one Stripe customer per user, Checkout Sessions, and fulfilment on the success page."""

from __future__ import annotations

import contextlib
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from webapp.billing.base import (
    CatalogMismatch,
    CheckoutBusy,
    CheckoutNotFound,
    SubscriptionExists,
    call_stripe,
    from_timestamp,
    id_of,
)
from webapp.billing.credits import credits_for_invoice
from webapp.billing.duplicates import live_at_stripe
from webapp.billing.errors import provider_errors, required
from webapp.billing.leases import Busy, lease
from webapp.billing.stripe_facts import SubscriptionFacts, fetch_invoice_facts
from webapp.billing.subscriptions import live_subscription
from webapp.billing.sync import (
    InvoiceState,
    apply_invoice_state,
    apply_subscription_state,
    fetch_subscription_state,
)
from webapp.billing.trials import trial_credits_granted, trial_days_for
from webapp.catalog import Plan, Price, get_catalog, get_checkout_options
from webapp.extensions import db
from webapp.models import CheckoutSession, User
from webapp.models.base import utcnow
from webapp.stripe_gateway import InvalidRequest, get_gateway
from webapp.urls import public_url

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

    status: str  # "complete", "processing", "open", "expired" or "duplicate"
    plan: Plan | None
    credits_granted: int
    # A free trial: when it ends (the first payment is due then, if a card is on file).
    trial_end: datetime | None = None


@dataclass(frozen=True)
class CheckoutFacts:
    """A Checkout Session as Stripe has it, and once paid its subscription and invoice."""

    session_id: str
    status: str
    paid: bool
    client_reference_id: str | None
    subscription: SubscriptionFacts | None
    invoice: InvoiceState | None
    # The buyer ticked "I agree to the Terms of Service" (`consent.terms_of_service`).
    terms_accepted: bool = False


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


@provider_errors
def start_checkout(
    user: User, plan_id: str, cycle: str, *, success_url: str, cancel_url: str
) -> CheckoutStart:
    """A Checkout Session for `plan_id`/`cycle`: reused if one is open, else a new one.

    Raises UnknownPlan, SubscriptionExists, CatalogMismatch or billing's PaymentProviderError.
    """
    catalog = get_catalog()
    plan = catalog.plan(plan_id)
    price = plan.price(cycle)
    if live_subscription(user.id) is not None:
        raise SubscriptionExists(SUBSCRIPTION_EXISTS)
    # One checkout start per user at a time, across workers and hosts: a concurrent start waits
    # here, then finds the session this one opened and reuses it.
    try:
        with lease(f"checkout:{user.id}"):
            return _start_checkout(user, plan, price, success_url, cancel_url)
    except Busy:
        raise CheckoutBusy("Another checkout for your account is starting. Try again.") from None


SUBSCRIPTION_EXISTS = "You already have a subscription. Change plans in Manage billing."


def _start_checkout(
    user: User, plan: Plan, price: Price, success_url: str, cancel_url: str
) -> CheckoutStart:
    plan_id, cycle = plan.id, price.cycle
    # The key counts this user's sessions *before* looking for an open one: a racing request that
    # records its session in between is then found below, or else both send the same key.
    options = get_checkout_options()
    trial_days = trial_days_for(user.id, plan)
    # A trial or not makes other parameters: another key (see _checkout_idempotency_key).
    fingerprint = f"{options.fingerprint()}-trial{trial_days}"
    idempotency_key = _checkout_idempotency_key(
        user.id, plan_id, cycle, success_url, cancel_url, fingerprint
    )
    reusable = _reuse_or_expire_open_session(user.id, plan_id, cycle, success_url, cancel_url)
    if reusable is not None:
        return CheckoutStart(reusable.stripe_session_id, reusable.url, plan, price)
    customer_id = ensure_customer(user)
    _refuse_if_live_at_stripe(customer_id)
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
        option_params={
            **options.session_params(terms_url=public_url("legal.terms")),
            **options.trial_params(trial_days),
        },
    )
    _record_checkout_session(user.id, plan_id, cycle, session)
    log.info("checkout session %s created for user %s (%s)", session.id, user.id, price.lookup_key)
    return CheckoutStart(session.id, required(session.url, "a checkout URL"), plan, price)


def _refuse_if_live_at_stripe(customer_id: str) -> None:
    """A checkout paid moments ago may not have reached us yet: Stripe knows first."""
    live = live_at_stripe(customer_id)
    if not live:
        return
    facts = fetch_subscription_state(live[0].id)
    apply_subscription_state(facts)
    db.session.commit()
    raise SubscriptionExists(SUBSCRIPTION_EXISTS)


def _checkout_idempotency_key(user_id: int, plan_id: str, cycle: str, *parts: str) -> str:
    # A double click sends the same key (one session); a later checkout, after the previous one
    # was completed or expired, counts one more session and so gets a new key.
    attempts = db.session.scalar(
        select(func.count()).select_from(CheckoutSession).where(CheckoutSession.user_id == user_id)
    )
    # The return URLs and the checkout options: other parameters need another key.
    urls_digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    return f"checkout-{user_id}-{attempts}-{plan_id}-{cycle}-{urls_digest}"


def _reuse_or_expire_open_session(
    user_id: int, plan_id: str, cycle: str, success_url: str, cancel_url: str
) -> CheckoutSession | None:
    """At most one open session per user: the same plan and return URLs reuse it; another plan
    or other URLs (an API client's new successUrl) expire it."""
    now = utcnow()
    open_sessions = db.session.scalars(
        select(CheckoutSession).where(
            CheckoutSession.user_id == user_id,
            CheckoutSession.status == "open",
            # A credit pack's checkout (billing/packs.py) is no plan checkout: it stays open.
            CheckoutSession.cycle != "pack",
        )
    ).all()
    for row in open_sessions:
        still_valid = row.expires_at is None or row.expires_at > now + timedelta(minutes=5)
        if (
            still_valid
            and row.plan_id == plan_id
            and row.cycle == cycle
            and _returns_to(row.stripe_session_id, success_url, cancel_url)
        ):
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


def _returns_to(session_id: str, success_url: str, cancel_url: str) -> bool:
    """True when the open session sends the payer back where this request asks (we keep no copy
    of its URLs, so Stripe says). Stripe may show `{CHECKOUT_SESSION_ID}` filled in or not."""
    try:
        session = call_stripe(get_gateway().retrieve_checkout_session, session_id)
    except InvalidRequest:
        return False
    filled = success_url.replace(CHECKOUT_SESSION_ID, session_id)
    return session.success_url in (success_url, filled) and session.cancel_url == cancel_url


CHECKOUT_SESSION_ID = "{CHECKOUT_SESSION_ID}"


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


@provider_errors
def fulfil_checkout(session_id: str, *, user_id: int) -> Fulfilment:
    """The success page: check ownership, then fulfil exactly as the webhook does."""
    row = db.session.scalar(
        select(CheckoutSession).where(CheckoutSession.stripe_session_id == session_id)
    )
    # A credit pack's session has its own success page (billing/packs.py).
    if row is None or row.user_id != user_id or row.cycle == "pack":
        raise CheckoutNotFound("No such checkout session.")
    plan = get_catalog().plan(row.plan_id)
    facts = fetch_checkout_facts(session_id)
    if facts.client_reference_id != str(user_id):
        raise CheckoutNotFound("No such checkout session.")
    apply_checkout_facts(facts)
    db.session.commit()
    if facts.status == "complete" and facts.paid:
        if facts.subscription is not None and facts.subscription.duplicate_of:
            return Fulfilment("duplicate", plan, 0)
        subscription = facts.subscription
        if subscription is not None and subscription.status == "trialing":
            granted = trial_credits_granted(user_id, subscription.id)
            return Fulfilment("complete", plan, granted, subscription.trial_end)
        invoice_id = facts.invoice.invoice.id if facts.invoice else None
        return Fulfilment("complete", plan, credits_for_invoice(invoice_id) if invoice_id else 0)
    if facts.status == "complete":
        return Fulfilment("processing", plan, 0)
    return Fulfilment(facts.status, plan, 0)


def record_session_status(session_id: str, status: str, terms_accepted: bool) -> None:
    """Our row of a session (a plan's or a pack's) follows Stripe's status; the terms consent
    is stamped once."""
    db.session.execute(
        update(CheckoutSession)
        .where(
            CheckoutSession.stripe_session_id == session_id,
            CheckoutSession.status != "complete",
        )
        .values(status=status)
    )
    if terms_accepted:
        # The first to see it (success page or webhook) stamps the time; the other keeps it.
        db.session.execute(
            update(CheckoutSession)
            .where(
                CheckoutSession.stripe_session_id == session_id,
                CheckoutSession.terms_accepted_at.is_(None),
            )
            .values(terms_accepted_at=utcnow())
        )


def fetch_checkout_facts(session_id: str) -> CheckoutFacts:
    """The session, and once paid its subscription (duplicates settled first) and invoice.

    Settling duplicates cancels and refunds at Stripe, even from the success page's GET: each
    step is idempotent, and waiting for the webhook would leave a second charge standing.
    """
    session = call_stripe(get_gateway().retrieve_checkout_session, session_id)
    paid = session.payment_status in ("paid", "no_payment_required")
    subscription = invoice = None
    subscription_id, invoice_id = id_of(session.subscription), id_of(session.invoice)
    if session.status == "complete" and paid and subscription_id:
        subscription = fetch_subscription_state(subscription_id, new=True)
        if invoice_id:
            invoice = InvoiceState(fetch_invoice_facts(invoice_id), subscription)
    consent = session.consent
    return CheckoutFacts(
        session.id,
        required(session.status, "a checkout session's status"),
        paid,
        session.client_reference_id,
        subscription,
        invoice,
        terms_accepted=consent is not None and consent.terms_of_service == "accepted",
    )


def apply_checkout_facts(facts: CheckoutFacts) -> None:
    """Record the session's status and, once paid, its subscription, invoice and credits."""
    record_session_status(facts.session_id, facts.status, facts.terms_accepted)
    if facts.invoice is not None:
        apply_invoice_state(facts.invoice)
    elif facts.subscription is not None:
        apply_subscription_state(facts.subscription)


def expire_lapsed_checkouts() -> int:
    """Mark open Checkout Sessions past their `expires_at` (Stripe's time) as expired; how many.

    Stripe expires them itself and says so with `checkout.session.expired`; this catches the
    ones whose event never came, so a next checkout and account deletion do not ask Stripe to
    expire them again. Rows are kept, never deleted: the number of a member's sessions is part
    of the next one's idempotency key (`_idempotency_key`), and a completed one holds the
    member's consent to the terms.
    """
    now = from_timestamp(get_gateway().now())
    result = db.session.execute(
        update(CheckoutSession)
        .where(CheckoutSession.status == "open", CheckoutSession.expires_at < now)
        .values(status="expired")
    )
    db.session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]
