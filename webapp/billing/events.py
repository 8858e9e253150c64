"""Stripe events: each verified event applied at most once, with its ledger row."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from webapp.billing.base import LIVE_STATUSES
from webapp.billing.checkout import apply_checkout_session, fetch_checkout_session
from webapp.billing.credits import grant_invoice_credits
from webapp.billing.subscriptions import fetch_invoice, fetch_subscription, store_subscription
from webapp.database import insert_or_ignore
from webapp.extensions import db
from webapp.models import Subscription, User, WebhookEvent
from webapp.models.base import utcnow

log = logging.getLogger(__name__)
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
