"""Billing use cases shared by the pages, the webhooks and the API.

This is the one place that writes subscription, checkout and credit state. Two rules run through it:

- Stripe is the source of truth. Every handler re-reads the object it is about from Stripe, so the
  order in which events arrive does not matter, and the success page and the webhook fulfil through
  the same idempotent functions.
- Never hold a database transaction open across a call to Stripe (`_stripe`): no row locks held
  during network I/O, and no stale SQLite snapshot when the in-process sandbox writes meanwhile.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from webapp.catalog import Plan, Price, UnknownPlan, get_catalog
from webapp.database import insert_or_ignore
from webapp.extensions import db
from webapp.models import CheckoutSession, CreditEntry, Subscription, User, WebhookEvent
from webapp.models.base import utcnow
from webapp.stripe_gateway import InvalidRequest, get_gateway

log = logging.getLogger(__name__)
T = TypeVar("T")

LIVE_STATUSES = frozenset({"active", "trialing", "past_due"})
PAID_INVOICE_REASONS = frozenset({"subscription_create", "subscription_cycle"})


class BillingError(Exception):
    """A request the billing rules refuse; `code` is stable (the API's error code)."""

    code = "billing_error"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SubscriptionExists(BillingError):
    code = "subscription_exists"


class NoBillingAccount(BillingError):
    code = "no_billing_account"


class CheckoutNotFound(BillingError):
    code = "checkout_not_found"
    status = 404


class CatalogMismatch(BillingError):
    """Stripe would charge something other than the catalog says; refuse rather than surprise."""

    code = "catalog_mismatch"
    status = 503


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


@dataclass(frozen=True)
class CreditSummary:
    balance: int
    total_granted: int
    total_used: int
    recent: list[CreditEntry]


def _stripe(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call the gateway with no transaction of ours open (see the module docstring)."""
    db.session.commit()
    return call(*args, **kwargs)


def _from_timestamp(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None


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


def credit_summary(user_id: int, recent: int = 10) -> CreditSummary:
    """The balance is derived from the ledger, never stored on its own."""
    granted, used = db.session.execute(
        select(
            func.coalesce(func.sum(CreditEntry.amount).filter(CreditEntry.amount > 0), 0),
            func.coalesce(-func.sum(CreditEntry.amount).filter(CreditEntry.amount < 0), 0),
        ).where(CreditEntry.user_id == user_id)
    ).one()
    entries = db.session.scalars(
        select(CreditEntry)
        .where(CreditEntry.user_id == user_id)
        .order_by(CreditEntry.created_at.desc(), CreditEntry.id.desc())
        .limit(recent)
    ).all()
    return CreditSummary(int(granted) - int(used), int(granted), int(used), list(entries))


# --- Checkout ---------------------------------------------------------------------------------


def ensure_customer(user: User) -> str:
    """The user's one Stripe customer, created the first time and reused forever.

    Two racing requests send the same idempotency key, so Stripe makes one customer; the
    compare-and-set below stores it once.
    """
    if user.stripe_customer_id:
        return user.stripe_customer_id
    user_id, email, generation = user.id, user.email, user.stripe_customer_generation
    customer = _stripe(
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
    stripe_price = _stripe(get_gateway().price_for, price.lookup_key)
    if stripe_price.unit_amount != price.amount_cents or stripe_price.currency != price.currency:
        log.error(
            "Stripe price %s does not match the catalog; run stripe sync-catalog", price.lookup_key
        )
        raise CatalogMismatch("This plan is briefly unavailable. Please try again later.")
    session = _stripe(
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
            _stripe(get_gateway().expire_checkout_session, session_id)
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
        expires_at=_from_timestamp(session.expires_at),
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
        return Fulfilment("complete", plan, _credits_for_invoice(_id_of(session.invoice)))
    if session.status == "complete":
        return Fulfilment("processing", plan, 0)
    return Fulfilment(session.status, plan, 0)


def _credits_for_invoice(invoice_id: str | None) -> int:
    if invoice_id is None:
        return 0
    amount = db.session.scalar(
        select(CreditEntry.amount).where(CreditEntry.grant_key == f"invoice:{invoice_id}")
    )
    return amount or 0


def _get(obj: Any, *path: str) -> Any:
    """Follow `path` through Stripe objects or dicts; None where a step is missing."""
    for key in path:
        if obj is None or isinstance(obj, str):
            return None
        try:
            obj = obj[key]
        except (KeyError, TypeError):
            return None
    return obj


def _id_of(value: Any) -> str | None:
    """An expandable Stripe field: either an id or the expanded object."""
    if value is None or isinstance(value, str):
        return value
    return value.id


def create_portal_session(user: User, return_url: str) -> str:
    """A Stripe customer-portal URL for the user; NoBillingAccount if they never bought."""
    if not user.stripe_customer_id:
        raise NoBillingAccount("You have no billing account yet. Choose a plan first.")
    portal = _stripe(
        get_gateway().create_portal_session,
        customer_id=user.stripe_customer_id,
        return_url=return_url,
    )
    return portal.url


# --- Reading from Stripe (before any write: see the module docstring) --------------------------


def fetch_checkout_session(session_id: str) -> Any:
    return _stripe(
        get_gateway().retrieve_checkout_session, session_id, expand=["subscription", "invoice"]
    )


def fetch_subscription(subscription_id: str) -> Any:
    return _stripe(get_gateway().retrieve_subscription, subscription_id)


def fetch_invoice(invoice_id: str) -> tuple[Any, Any | None]:
    """An invoice and the current state of its subscription (None for a one-off invoice)."""
    invoice = _stripe(get_gateway().retrieve_invoice, invoice_id)
    subscription_id = _invoice_subscription_id(invoice)
    return invoice, fetch_subscription(subscription_id) if subscription_id else None


def _invoice_subscription_id(invoice: Any) -> str | None:
    return _id_of(_get(invoice, "parent", "subscription_details", "subscription"))


# --- Writing state (no commits here: the caller's transaction holds the event's effects) -------


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


def _user_for_customer(customer_id: str, metadata: Any) -> int | None:
    user_id = db.session.scalar(select(User.id).where(User.stripe_customer_id == customer_id))
    if user_id is not None:
        return user_id
    # A customer we have not linked yet (e.g. the webhook raced the checkout page): trust only
    # the metadata we set ourselves when creating the session.
    raw = _get(metadata, "user_id")
    if raw and str(raw).isdigit() and db.session.get(User, int(raw)) is not None:
        return int(raw)
    return None


def _plan_and_cycle(stripe_subscription: Any) -> tuple[str, str]:
    item = stripe_subscription["items"]["data"][0]
    lookup_key = _get(item, "price", "lookup_key")
    catalog = get_catalog()
    try:
        price = catalog.price_by_lookup_key(lookup_key or "")
    except UnknownPlan:
        # The lookup key moved to a newer price (catalog sync); our metadata still names the plan.
        metadata = stripe_subscription.metadata
        price = catalog.price(_get(metadata, "plan") or "", _get(metadata, "cycle") or "monthly")
    return price.plan_id, price.cycle


def store_subscription(stripe_subscription: Any) -> Subscription | None:
    """Store a subscription's current state as read from Stripe; top up credits on upgrade."""
    subscription_id = stripe_subscription.id
    customer_id = _id_of(stripe_subscription.customer)
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
        "current_period_start": _from_timestamp(_get(item, "current_period_start")),
        "current_period_end": _from_timestamp(_get(item, "current_period_end")),
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


# --- Credits ----------------------------------------------------------------------------------


def add_months(moment: datetime, months: int) -> datetime:
    """`moment` plus whole calendar months, clamping the day (Jan 31 + 1 month = Feb 28/29)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    for day in (moment.day, 30, 29, 28):
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable: every month has 28 days")


def _plan_name(plan: Plan) -> str:
    # The catalog's name, not the published copy: ledger lines are records, and reading the copy
    # could write its first revision in another connection while this transaction holds SQLite.
    return plan.default_copy["name"]


def _period_key(subscription_id: str, month_start: datetime) -> str:
    return f"{subscription_id}:{month_start.date().isoformat()}"


def _current_month_start(subscription: Subscription, now: datetime) -> datetime | None:
    start = subscription.current_period_start
    if start is None:
        return None
    months = 0
    while months < 11 and add_months(start, months + 1) <= now:
        months += 1
    return add_months(start, months)


def grant_credits(
    *,
    user_id: int,
    amount: int,
    grant_key: str,
    period_key: str | None,
    description: str,
    subscription_id: str | None,
) -> bool:
    """Add one grant to the ledger; False if `grant_key` was granted already (a replay)."""
    if amount <= 0:
        return False
    granted = insert_or_ignore(
        CreditEntry,
        {
            "user_id": user_id,
            "amount": amount,
            "kind": "grant",
            "description": description,
            "grant_key": grant_key,
            "period_key": period_key,
            "stripe_subscription_id": subscription_id,
        },
        ["grant_key"],
    )
    if granted:
        log.info("granting %s credits to user %s (%s)", amount, user_id, grant_key)
    return granted


def grant_invoice_credits(invoice: Any, subscription: Subscription) -> None:
    """A paid subscription invoice grants its plan's monthly credits, once per invoice."""
    if invoice.status != "paid" or invoice.billing_reason not in PAID_INVOICE_REASONS:
        return  # an upgrade's proration invoice is covered by `top_up_after_upgrade`
    line = invoice["lines"]["data"][0]
    plan = _plan_of_invoice_line(line) or get_catalog().plan(subscription.plan_id)
    month_start = (
        _from_timestamp(_get(line, "period", "start")) or subscription.current_period_start
    )
    subscription_id = subscription.stripe_subscription_id
    grant_credits(
        user_id=subscription.user_id,
        amount=plan.monthly_credits,
        grant_key=f"invoice:{invoice.id}",
        period_key=_period_key(subscription_id, month_start),
        description=f"{_plan_name(plan)} plan: monthly credits",
        subscription_id=subscription_id,
    )
    top_up_after_upgrade(subscription)


def _plan_of_invoice_line(line: Any) -> Plan | None:
    """The plan an invoice line charged for, from its price's lookup key, when present."""
    price = _get(line, "pricing", "price_details", "price")
    lookup_key = None if isinstance(price, str) else _get(price, "lookup_key")
    plan_id = _get(line, "metadata", "plan")
    try:
        if lookup_key:
            return get_catalog().plan(get_catalog().price_by_lookup_key(lookup_key).plan_id)
        return get_catalog().plan(plan_id) if plan_id else None
    except UnknownPlan:
        return None


def top_up_after_upgrade(subscription: Subscription) -> None:
    """After an upgrade, bring this month's grants up to the new plan's credits, once.

    Only a month that was already granted (paid) is topped up; a downgrade takes nothing back and
    simply grants less from the next renewal.
    """
    if subscription.status not in ("active", "trialing"):
        return
    month_start = _current_month_start(subscription, utcnow())
    if month_start is None:
        return
    period_key = _period_key(subscription.stripe_subscription_id, month_start)
    granted = db.session.scalar(
        select(func.coalesce(func.sum(CreditEntry.amount), 0)).where(
            CreditEntry.period_key == period_key
        )
    )
    plan = get_catalog().plan(subscription.plan_id)
    if granted and plan.monthly_credits > granted:
        grant_credits(
            user_id=subscription.user_id,
            amount=plan.monthly_credits - granted,
            grant_key=f"topup:{period_key}:{plan.monthly_credits}",
            period_key=period_key,
            description=f"Upgrade to {_plan_name(plan)}: the rest of this month",
            subscription_id=subscription.stripe_subscription_id,
        )


def grant_due_credits(now: datetime | None = None) -> int:
    """Yearly plans: each new month since the period began gets the monthly credits, once."""
    now = now or utcnow()
    granted = 0
    yearly = db.session.scalars(
        select(Subscription).where(
            Subscription.cycle == "yearly", Subscription.status.in_(("active", "trialing"))
        )
    ).all()
    for subscription in yearly:
        month_start = _current_month_start(subscription, now)
        if month_start is None or month_start == subscription.current_period_start:
            continue  # month 0 is granted by the paid invoice
        plan = get_catalog().plan(subscription.plan_id)
        period_key = _period_key(subscription.stripe_subscription_id, month_start)
        granted += grant_credits(
            user_id=subscription.user_id,
            amount=plan.monthly_credits,
            grant_key=f"month:{period_key}",
            period_key=period_key,
            description=f"{_plan_name(plan)} plan: monthly credits",
            subscription_id=subscription.stripe_subscription_id,
        )
        db.session.commit()
    return granted


# --- Webhook events ---------------------------------------------------------------------------
#
# Each handler is split in two: `fetch` reads what it needs from Stripe (network, no writes),
# `apply` writes the effects inside the event's one transaction.


def _fetch_session(event: dict) -> Any:
    return fetch_checkout_session(event["data"]["object"]["id"])


def _fetch_subscription(event: dict) -> Any:
    return fetch_subscription(event["data"]["object"]["id"])


def _fetch_invoice(event: dict) -> Any:
    return fetch_invoice(event["data"]["object"]["id"])


def _apply_subscription(stripe_subscription: Any) -> None:
    store_subscription(stripe_subscription)


def _apply_paid_invoice(facts: tuple[Any, Any | None]) -> None:
    invoice, stripe_subscription = facts
    row = store_subscription(stripe_subscription) if stripe_subscription is not None else None
    if row is not None:
        grant_invoice_credits(invoice, row)


def _apply_invoice_problem(facts: tuple[Any, Any | None]) -> None:
    _invoice, stripe_subscription = facts
    if stripe_subscription is not None:
        store_subscription(stripe_subscription)


def _fetch_nothing(event: dict) -> dict:
    return event["data"]["object"]


def _apply_customer_deleted(customer: dict) -> None:
    customer_id = customer["id"]
    db.session.execute(
        update(User)
        .where(User.stripe_customer_id == customer_id)
        .values(
            stripe_customer_id=None,
            stripe_customer_generation=User.stripe_customer_generation + 1,
        )
    )
    db.session.execute(
        update(Subscription)
        .where(
            Subscription.stripe_customer_id == customer_id,
            Subscription.status.in_(LIVE_STATUSES),
        )
        .values(status="canceled")
    )


@dataclass(frozen=True)
class EventHandler:
    fetch: Callable[[dict], Any]
    apply: Callable[[Any], None]


_SESSION = EventHandler(_fetch_session, apply_checkout_session)
_SUBSCRIPTION = EventHandler(_fetch_subscription, _apply_subscription)
_INVOICE_PROBLEM = EventHandler(_fetch_invoice, _apply_invoice_problem)

EVENT_HANDLERS: dict[str, EventHandler] = {
    "checkout.session.completed": _SESSION,
    "checkout.session.async_payment_succeeded": _SESSION,
    "checkout.session.expired": _SESSION,
    "customer.subscription.created": _SUBSCRIPTION,
    "customer.subscription.updated": _SUBSCRIPTION,
    "customer.subscription.deleted": _SUBSCRIPTION,
    "invoice.paid": EventHandler(_fetch_invoice, _apply_paid_invoice),
    "invoice.payment_failed": _INVOICE_PROBLEM,
    "invoice.payment_action_required": _INVOICE_PROBLEM,
    "customer.deleted": EventHandler(_fetch_nothing, _apply_customer_deleted),
}


@dataclass(frozen=True)
class EventOutcome:
    status: str  # "processed", "ignored", "duplicate" or "failed"
    error: str | None = None


def process_event(event: dict) -> EventOutcome:
    """Apply a verified Stripe event at most once, in one transaction with its ledger row.

    Raises whatever the fetch or apply step raised, after rolling back and recording the
    failure, so the webhook answers 500 and Stripe retries.
    """
    handler = EVENT_HANDLERS.get(event["type"])
    if handler is not None and _already_applied(event["id"]):
        return EventOutcome("duplicate")  # a redelivery: spare Stripe the re-read
    try:
        facts = handler.fetch(event) if handler else None
        if not _claim_event(event, "processed" if handler else "ignored"):
            db.session.rollback()
            return EventOutcome("duplicate")
        if handler:
            handler.apply(facts)
        db.session.commit()
    except Exception as exc:
        db.session.rollback()
        log.exception("webhook event %s (%s) failed", event["id"], event["type"])
        return EventOutcome("failed", _record_failure(event, exc))
    return EventOutcome("processed" if handler else "ignored")


def _already_applied(event_id: str) -> bool:
    status = db.session.scalar(select(WebhookEvent.status).where(WebhookEvent.id == event_id))
    return status in ("processed", "ignored")


def _claim_event(event: dict, status: str) -> bool:
    """Insert the ledger row inside the event's transaction; False for a duplicate.

    On PostgreSQL a concurrent delivery of the same event waits on the primary key until this
    transaction ends, then finds the event done. A first delivery costs this one statement.
    """
    now = utcnow()
    row = {
        "id": event["id"],
        "type": event["type"],
        "created": int(event["created"]),
        "payload": event,
        "status": status,
        "attempts": 1,
        "processed_at": now,
    }
    if insert_or_ignore(WebhookEvent, row, ["id"]):
        return True
    existing = db.session.scalars(
        select(WebhookEvent)
        .where(WebhookEvent.id == event["id"])
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if existing.status in ("processed", "ignored"):
        return False
    # A delivery that failed before: this one applies it.
    existing.status, existing.error, existing.processed_at = status, None, now
    existing.attempts = (existing.attempts or 0) + 1
    return True


def _record_failure(event: dict, exc: Exception) -> str:
    error = f"{type(exc).__name__}: {exc}"[:2000]
    row = db.session.get(WebhookEvent, event["id"])
    if row is None:
        row = WebhookEvent(
            id=event["id"], type=event["type"], created=int(event["created"]), payload=event
        )
        db.session.add(row)
    elif row.status in ("processed", "ignored"):
        return error
    row.status, row.error, row.attempts = "failed", error, (row.attempts or 0) + 1
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
    return error


def replay_event(event_id: str) -> EventOutcome:
    """Re-process a stored event from the ledger (`flask webhooks replay`)."""
    row = db.session.get(WebhookEvent, event_id)
    if row is None:
        raise LookupError(f"no event {event_id} in the ledger")
    payload = dict(row.payload)
    row.status = "replaying"
    db.session.commit()
    return process_event(payload)


def failed_event_ids() -> list[str]:
    return list(
        db.session.scalars(
            select(WebhookEvent.id)
            .where(WebhookEvent.status.in_(("failed", "replaying")))
            .order_by(WebhookEvent.created)
        )
    )
