"""Reconciliation with Stripe: what the webhooks should have told us, read from Stripe itself.

Two jobs (webapp/jobs/scheduled.py runs them on a schedule):

- `reconcile_events`: walk Stripe's events (`GET /v1/events`, which keeps 30 days) created since
  a little before the newest event we hold, plus every event Stripe says some endpoint has not
  had (`delivery_success=false`, Stripe's own recipe: docs.stripe.com/webhooks/
  process-undelivered-events), and put each one we never received through the ledger exactly
  as a webhook delivery would (`deliver_to_ledger`). The ledger's primary key on the event id
  is what makes this safe beside the webhooks: an event both delivered and found here is
  applied once, whichever comes first; one held already (even as failed: that is the
  sweeper's and `flask webhooks replay`'s) is skipped.
- `resync_subscriptions`: each live subscription read afresh from Stripe and applied, paced,
  in case an event was lost beyond the 30 days or never emitted.

Invariant: an event is applied at most once (the ledger), and an event Stripe holds that never
reached us is applied by the next run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from webapp.billing.base import LIVE_STATUSES
from webapp.billing.events import EVENT_HANDLERS, process_event
from webapp.billing.sync import apply_subscription_state, fetch_subscription_state
from webapp.extensions import db
from webapp.models import Subscription, WebhookEvent
from webapp.stripe_gateway import PaymentProviderError, get_gateway

log = logging.getLogger(__name__)

# How far before the newest event we hold the walk starts: an event created then but delivered
# late (Stripe retries, reordering) is still looked for. Undelivered older ones are found by
# the `delivery_success=false` walk.
OVERLAP_SECONDS = 24 * 3600
# Stripe lists events of the last 30 days only.
RETENTION_SECONDS = 30 * 24 * 3600
# Stripe takes at most 20 names in `types`.
TYPES_PER_REQUEST = 20
# Between two subscriptions' re-reads: keeps a re-sync of thousands well under Stripe's rate
# limit (100 reads a second live, 25 in test mode) and leaves room for the site's own calls.
RESYNC_PACE_SECONDS = 0.2


@dataclass
class ReconcileRun:
    seen: int = 0
    applied: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"{self.seen} events seen, {len(self.applied)} missed and applied, " + (
            f"{len(self.failed)} failed" if self.failed else "none failed"
        )


def reconcile_events() -> ReconcileRun:
    """Apply every event Stripe holds that the ledger lacks, oldest first."""
    gateway = get_gateway()
    now = gateway.now()
    newest = db.session.scalar(select(func.max(WebhookEvent.created)))
    floor = now - RETENTION_SECONDS
    since = max(floor, newest - OVERLAP_SECONDS) if newest is not None else floor
    db.session.commit()  # no transaction of ours open across the Stripe calls
    found: dict[str, dict[str, Any]] = {}
    run = ReconcileRun()
    for walk in ({"created_after": since}, {"created_after": floor, "undelivered_only": True}):
        for event in _listed(walk):
            run.seen += 1
            found.setdefault(event["id"], event)
    missing = _not_in_ledger(found)
    for event in sorted(missing, key=lambda e: (e["created"], e["id"])):
        outcome = deliver_to_ledger(event)
        (run.failed if outcome == "failed" else run.applied).append(event["id"])
    return run


def _listed(walk: dict[str, Any]) -> Iterator[dict[str, Any]]:
    handled = sorted(EVENT_HANDLERS)
    for start in range(0, len(handled), TYPES_PER_REQUEST):
        types = handled[start : start + TYPES_PER_REQUEST]
        yield from get_gateway().list_events(types=types, **walk)


def _not_in_ledger(events: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    held: set[str] = set()
    ids = list(events)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        held.update(db.session.scalars(select(WebhookEvent.id).where(WebhookEvent.id.in_(chunk))))
    db.session.commit()
    return [event for event_id, event in events.items() if event_id not in held]


def deliver_to_ledger(event: dict[str, Any]) -> str:
    """Record and process `event` exactly as a webhook delivery of it would; its outcome."""
    outcome = process_event(event)
    log.info("reconcile: missed event %s (%s): %s", event["id"], event["type"], outcome.status)
    return outcome.status


@dataclass
class ResyncRun:
    synced: int = 0
    failed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"{self.synced} live subscriptions re-read, {len(self.failed)} failed"


def resync_subscriptions(pace_seconds: float = RESYNC_PACE_SECONDS) -> ResyncRun:
    """Re-read every live subscription from Stripe and apply it, one at a time, paced."""
    subscription_ids = list(
        db.session.scalars(
            select(Subscription.stripe_subscription_id)
            .where(Subscription.status.in_(LIVE_STATUSES))
            .order_by(Subscription.id)
        )
    )
    db.session.commit()
    return _resync(subscription_ids, pace_seconds)


def _resync(subscription_ids: Iterable[str], pace_seconds: float) -> ResyncRun:
    run = ResyncRun()
    for index, subscription_id in enumerate(subscription_ids):
        if index and pace_seconds:
            time.sleep(pace_seconds)
        try:
            facts = fetch_subscription_state(subscription_id)  # network, no transaction open
            apply_subscription_state(facts)
            db.session.commit()
            run.synced += 1
        except (PaymentProviderError, SQLAlchemyError):
            db.session.rollback()
            log.exception("re-sync of %s failed; the next run retries", subscription_id)
            run.failed.append(subscription_id)
    return run
