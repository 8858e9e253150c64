"""Stripe events: each verified event applied at most once, with its ledger row.

The invariant (tests/billing/test_event_queue_properties.py): every event the endpoint
answered 200 for is in the ledger; its effects (a subscription's state, an invoice's credits)
are applied at most once always, because the row is claimed in the same transaction as the
effects, and exactly once eventually, because a row not yet claimed stays `received` (or
`failed`) until a worker, a retry, the sweeper or `flask webhooks replay` applies it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from webapp.billing import emails
from webapp.billing.base import LIVE_STATUSES, call_stripe, dig, id_of
from webapp.billing.checkout import CheckoutFacts, apply_checkout_facts, fetch_checkout_facts
from webapp.billing.company import (
    CustomerDetailsFacts,
    apply_customer_details,
    fetch_customer_details,
)
from webapp.billing.credits import Cause, settle_subscription
from webapp.billing.packs import PackFacts, apply_pack_facts, fetch_pack_facts, is_pack_session
from webapp.billing.stripe_facts import SubscriptionFacts, invoice_of_payment
from webapp.billing.sync import (
    InvoiceState,
    apply_invoice_state,
    apply_subscription_state,
    fetch_invoice_state,
    fetch_subscription_state,
)
from webapp.database import insert_or_ignore, lock_row
from webapp.extensions import db
from webapp.models import Subscription, User, WebhookEvent
from webapp.models.base import utcnow
from webapp.stripe_gateway import get_gateway

log = logging.getLogger(__name__)
# Each handler is split in two: `fetch` reads what it needs from Stripe (network, no writes),
# `apply` writes the effects inside the event's one transaction. Every fetch re-reads Stripe's
# current state, so the order and the lateness of events do not matter; what an event's own
# payload is trusted for is only a link that never changes (a refund's payment intent).


def _object(event: dict[str, Any]) -> dict[str, Any]:
    obj: dict[str, Any] = event["data"]["object"]
    return obj


def _fetch_session(event: dict[str, Any]) -> CheckoutFacts | PackFacts:
    session = _object(event)
    if is_pack_session(session):
        return fetch_pack_facts(session["id"])
    return fetch_checkout_facts(session["id"])


def _apply_session(facts: CheckoutFacts | PackFacts) -> None:
    if isinstance(facts, PackFacts):
        apply_pack_facts(facts)
    else:
        apply_checkout_facts(facts)


def _fetch_subscription(event: dict[str, Any]) -> SubscriptionFacts:
    return fetch_subscription_state(_object(event)["id"])


def _fetch_new_subscription(event: dict[str, Any]) -> SubscriptionFacts:
    # A subscription we may not know yet: if it is the user's second live one, settle that first.
    return fetch_subscription_state(_object(event)["id"], new=True)


def _fetch_scheduled_subscription(event: dict[str, Any]) -> SubscriptionFacts | None:
    schedule = _object(event)
    subscription_id = schedule.get("subscription") or schedule.get("released_subscription")
    if isinstance(subscription_id, dict):
        subscription_id = subscription_id.get("id")
    return fetch_subscription_state(subscription_id) if subscription_id else None


def _fetch_upcoming_subscription(event: dict[str, Any]) -> SubscriptionFacts | None:
    """`invoice.upcoming`: a preview with no id; the subscription it renews, read afresh."""
    upcoming = _object(event)
    subscription_id = id_of(dig(upcoming, "parent", "subscription_details", "subscription"))
    subscription_id = subscription_id or id_of(upcoming.get("subscription"))
    return fetch_subscription_state(subscription_id) if subscription_id else None


def _fetch_invoice(event: dict[str, Any]) -> InvoiceState:
    return fetch_invoice_state(_object(event)["id"])


def _fetch_credited_invoice(event: dict[str, Any]) -> InvoiceState | None:
    invoice_id = _object(event).get("invoice")
    if isinstance(invoice_id, dict):
        invoice_id = invoice_id.get("id")
    return fetch_invoice_state(invoice_id) if invoice_id else None


def _fetch_paid_invoice_of_payment(event: dict[str, Any]) -> InvoiceState | None:
    """A refund or dispute (or its charge): the invoice its payment paid, read afresh."""
    payment_intent = _object(event).get("payment_intent")
    if isinstance(payment_intent, dict):
        payment_intent = payment_intent.get("id")
    invoice_id = invoice_of_payment(payment_intent)
    return fetch_invoice_state(invoice_id) if invoice_id else None


def _fetch_customer_details(event: dict[str, Any]) -> CustomerDetailsFacts | None:
    """The customer a `customer.updated` or `customer.tax_id.*` event is about, read afresh."""
    obj = _object(event)
    customer = obj.get("id") if obj.get("object") == "customer" else obj.get("customer")
    return fetch_customer_details(customer if isinstance(customer, str) else None)


def _apply_subscription(facts: SubscriptionFacts | None) -> None:
    if facts is not None:
        apply_subscription_state(facts)


def _apply_invoice_for(kind: str | None) -> Callable[[InvoiceState | None], None]:
    """Apply an invoice's state; `kind` says why it changed (the ledger lines' words)."""

    def apply(state: InvoiceState | None) -> None:
        if state is not None:
            apply_invoice_state(state, Cause(state.invoice.id, kind))

    return apply


def _fetch_deleted_customer(event: dict[str, Any]) -> str | None:
    """The customer's id if Stripe, asked afresh, says it is deleted; None otherwise (a signed
    but stale or mistaken event must not unlink a live customer)."""
    customer_id = _object(event)["id"]
    return customer_id if call_stripe(get_gateway().customer_is_deleted, customer_id) else None


def _apply_customer_deleted(customer_id: str | None) -> None:
    """Stripe deleted the customer: its subscriptions ended now, and the next checkout makes a
    new customer (with a fresh idempotency key)."""
    if customer_id is None:
        return
    ended = db.session.scalars(
        select(Subscription).where(
            Subscription.stripe_customer_id == customer_id,
            Subscription.status.in_(LIVE_STATUSES),
        )
    ).all()
    for user_id in sorted({row.user_id for row in ended}):
        lock_row(User, user_id)
    db.session.execute(
        update(User)
        .where(User.stripe_customer_id == customer_id)
        .values(
            stripe_customer_id=None,
            stripe_customer_generation=User.stripe_customer_generation + 1,
        )
    )
    now = utcnow()
    for row in ended:
        row.status, row.ended_at = "canceled", row.ended_at or now
        settle_subscription(row.stripe_subscription_id, row.user_id)


@dataclass(frozen=True)
class EventHandler:
    fetch: Callable[[dict[str, Any]], Any]
    apply: Callable[[Any], None]


_SESSION = EventHandler(_fetch_session, _apply_session)
_SUBSCRIPTION = EventHandler(_fetch_subscription, _apply_subscription)
_SCHEDULE = EventHandler(_fetch_scheduled_subscription, _apply_subscription)
_INVOICE = EventHandler(_fetch_invoice, _apply_invoice_for(None))
_VOID = EventHandler(_fetch_invoice, _apply_invoice_for("void"))
_REFUND = EventHandler(_fetch_paid_invoice_of_payment, _apply_invoice_for("refund"))
_DISPUTE = EventHandler(_fetch_paid_invoice_of_payment, _apply_invoice_for("dispute"))
_CREDIT_NOTE = EventHandler(_fetch_credited_invoice, _apply_invoice_for("credit_note"))
_CUSTOMER_DETAILS = EventHandler(_fetch_customer_details, apply_customer_details)

# The events the webhook endpoint must be subscribed to (README, "Stripe, for real").
EVENT_HANDLERS: dict[str, EventHandler] = {
    "checkout.session.completed": _SESSION,
    "checkout.session.async_payment_succeeded": _SESSION,
    "checkout.session.expired": _SESSION,
    "customer.subscription.created": EventHandler(_fetch_new_subscription, _apply_subscription),
    "customer.subscription.updated": _SUBSCRIPTION,
    "customer.subscription.deleted": _SUBSCRIPTION,
    # Free trials: the reminder three days before the end, and a card-less trial paused at its
    # end (catalog trials cancel instead; a paused one made in the Dashboard is still shown).
    "customer.subscription.trial_will_end": _SUBSCRIPTION,
    "customer.subscription.paused": _SUBSCRIPTION,
    "customer.subscription.resumed": _SUBSCRIPTION,
    "subscription_schedule.created": _SCHEDULE,
    "subscription_schedule.updated": _SCHEDULE,
    "subscription_schedule.released": _SCHEDULE,
    "subscription_schedule.canceled": _SCHEDULE,
    "subscription_schedule.completed": _SCHEDULE,
    "subscription_schedule.aborted": _SCHEDULE,
    "invoice.upcoming": EventHandler(_fetch_upcoming_subscription, _apply_subscription),
    "invoice.paid": _INVOICE,
    "invoice.payment_failed": _INVOICE,
    "invoice.payment_action_required": _INVOICE,
    "invoice.voided": _VOID,
    "invoice.marked_uncollectible": _VOID,
    "charge.refunded": _REFUND,
    "refund.created": _REFUND,
    "refund.updated": _REFUND,
    "refund.failed": _REFUND,  # the money did not go back after all: the credits return
    "charge.dispute.created": _DISPUTE,
    "charge.dispute.updated": _DISPUTE,
    "charge.dispute.closed": _DISPUTE,
    "charge.dispute.funds_withdrawn": _DISPUTE,
    "charge.dispute.funds_reinstated": _DISPUTE,
    "credit_note.created": _CREDIT_NOTE,
    "credit_note.updated": _CREDIT_NOTE,
    "credit_note.voided": _CREDIT_NOTE,
    "customer.deleted": EventHandler(_fetch_deleted_customer, _apply_customer_deleted),
    # Company details (name, address, VAT number) changed at Stripe: Checkout or the Dashboard.
    "customer.updated": _CUSTOMER_DETAILS,
    "customer.tax_id.created": _CUSTOMER_DETAILS,
    "customer.tax_id.updated": _CUSTOMER_DETAILS,
    "customer.tax_id.deleted": _CUSTOMER_DETAILS,
}


@dataclass(frozen=True)
class EventOutcome:
    status: str  # "processed", "ignored", "duplicate" or "failed"
    error: str | None = None


# Ledger states in which an event's effects are done (or there are none): never applied again.
DONE_STATUSES = ("processed", "ignored")
# Ledger states a worker (or the sweeper) still has to act on.
WAITING_STATUSES = ("received", "failed")


@dataclass(frozen=True)
class Receipt:
    """What the ledger holds for an event just delivered: its status, and whether this
    delivery was the first."""

    status: str
    new: bool

    @property
    def done(self) -> bool:
        return self.status in DONE_STATUSES


def record_received(event: dict[str, Any]) -> Receipt:
    """Write a verified event to the ledger before any processing, and commit.

    An event we act on is `received` until a worker claims it; one we ignore is `ignored` at
    once (it has no effects, so no job). A redelivery changes nothing and reads the status.
    """
    handler = EVENT_HANDLERS.get(event["type"])
    now = utcnow()
    row = {
        "id": event["id"],
        "type": event["type"],
        "created": int(event["created"]),
        "payload": event,
        "status": "received" if handler else "ignored",
        "attempts": 0,
        "received_at": now,
        "processed_at": None if handler else now,
    }
    # One statement, atomic on its own, on a connection of its own in autocommit: no ORM
    # session to track it and no BEGIN and COMMIT round trips, which every delivery paid for
    # (profiled in process on PostgreSQL: 1.30 -> 1.20 ms of app CPU a delivery, 0.29 -> 0.22
    # ms in the server).
    autocommit = db.engine.execution_options(isolation_level="AUTOCOMMIT")
    with autocommit.connect() as connection:
        if insert_or_ignore(WebhookEvent, row, ["id"], connection):
            return Receipt(row["status"], new=True)
        # Stripe delivers an event still waiting or failed again (a retry of its own, or a
        # Resend from the Dashboard): hand it to the relay again, as a fresh attempt now.
        status = connection.scalar(
            update(WebhookEvent)
            .where(WebhookEvent.id == event["id"], WebhookEvent.status.in_(WAITING_STATUSES))
            .values(queued_at=None)
            .returning(WebhookEvent.status)
        ) or connection.scalar(select(WebhookEvent.status).where(WebhookEvent.id == event["id"]))
    return Receipt(status or "received", new=False)


def process_stored_event(event_id: str) -> EventOutcome:
    """Apply an event from the ledger (the `webhooks.process` job): at most once, by the claim
    in `process_event`; an unknown id is a LookupError."""
    payload = db.session.scalar(select(WebhookEvent.payload).where(WebhookEvent.id == event_id))
    db.session.commit()  # no read transaction held across the Stripe calls
    if payload is None:
        raise LookupError(f"no event {event_id} in the ledger")
    return process_event(dict(payload))


def claim_undispatched_events(limit: int = 500) -> list[str]:
    """The ledger as the webhooks' outbox: the oldest `limit` events waiting and not handed to
    the queue (`queued_at` NULL: recorded, delivered again, or released), marked queued now
    (committed) for the caller to enqueue, in no particular order.

    The claim is one UPDATE whose subquery skips rows another relay has locked (PostgreSQL), so
    two relays never take the same event; one that dies after its commit leaves its events
    waiting with `queued_at` set, which the sweeper queues again once they are old enough.
    """
    now = utcnow()
    undispatched = (WebhookEvent.status.in_(WAITING_STATUSES), WebhookEvent.queued_at.is_(None))
    oldest = select(WebhookEvent.id).where(*undispatched).order_by(WebhookEvent.received_at)
    oldest = oldest.limit(limit)
    if db.session.get_bind().dialect.name == "postgresql":
        oldest = oldest.with_for_update(skip_locked=True)
    event_ids = list(
        db.session.scalars(
            update(WebhookEvent)
            # Checked again on each row as the UPDATE finds it: another relay's committed
            # claim has set `queued_at`.
            .where(WebhookEvent.id.in_(oldest))
            .where(*undispatched)
            .values(queued_at=now)
            .returning(WebhookEvent.id)
        )
    )
    db.session.commit()
    return event_ids


def release_claims(event_ids: list[str]) -> None:
    """Hand claimed events back to the relays (the broker refused them): `queued_at` NULL."""
    if not event_ids:
        return
    db.session.execute(
        update(WebhookEvent)
        .where(WebhookEvent.id.in_(event_ids), WebhookEvent.status.in_(WAITING_STATUSES))
        .values(queued_at=None)
    )
    db.session.commit()


def claim_stale_events(older_than: timedelta, limit: int = 1000) -> list[str]:
    """The events a worker should have applied by now, marked as re-queued now: `received`
    for longer than `older_than` since they arrived or were last re-queued (a broker that was
    down, a lost message), or `failed` with a retry overdue by as long (a lost retry)."""
    now = utcnow()
    cutoff = now - older_than
    waiting_since = func.coalesce(WebhookEvent.queued_at, WebhookEvent.received_at)
    event_ids = list(
        db.session.scalars(
            select(WebhookEvent.id)
            .where(
                waiting_since < cutoff,
                (WebhookEvent.status == "received")
                | ((WebhookEvent.status == "failed") & (WebhookEvent.next_attempt_at < cutoff)),
            )
            .order_by(WebhookEvent.received_at)
            .limit(limit)
        )
    )
    if event_ids:
        db.session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id.in_(event_ids), WebhookEvent.status.in_(WAITING_STATUSES))
            .values(queued_at=now)
        )
    db.session.commit()
    return event_ids


def schedule_retry(event_id: str, delay: timedelta | None) -> None:
    """Note when a worker retries a failed event (None: never; its retries are spent)."""
    when = utcnow() + delay if delay is not None else None
    db.session.execute(
        update(WebhookEvent)
        .where(WebhookEvent.id == event_id, WebhookEvent.status == "failed")
        .values(next_attempt_at=when)
    )
    db.session.commit()


def process_event(event: dict[str, Any]) -> EventOutcome:
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
            emails.after_apply(event, facts)  # its mail, in the same transaction
        db.session.commit()
    except Exception as exc:
        db.session.rollback()
        log.exception("webhook event %s (%s) failed", event["id"], event["type"])
        return EventOutcome("failed", _record_failure(event, exc))
    return EventOutcome("processed" if handler else "ignored")


def _already_applied(event_id: str) -> bool:
    status = db.session.scalar(select(WebhookEvent.status).where(WebhookEvent.id == event_id))
    return status in DONE_STATUSES


def _claim_event(event: dict[str, Any], status: str) -> bool:
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
    if existing.status in DONE_STATUSES:
        return False
    # Received and waiting, or a delivery that failed before: this one applies it.
    existing.status, existing.error, existing.processed_at = status, None, now
    existing.attempts = (existing.attempts or 0) + 1
    return True


def _record_failure(event: dict[str, Any], exc: Exception) -> str:
    error = f"{type(exc).__name__}: {exc}"[:2000]
    row = db.session.get(WebhookEvent, event["id"])
    if row is None:
        row = WebhookEvent(
            id=event["id"], type=event["type"], created=int(event["created"]), payload=event
        )
        db.session.add(row)
    elif row.status in DONE_STATUSES:
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
