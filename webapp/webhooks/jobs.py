"""The webhook jobs: `webhooks.process` applies one event from the ledger, `webhooks.dispatch`
(the relay, run by every queue worker) queues the events the endpoint recorded, `webhooks.sweep`
queues again the events left waiting as `received` (README "Deploying").

The ledger is the outbox: the endpoint only records an event, in one commit, and a relay thread
in each worker hands what is new to the queue. So a delivery costs the web tier no broker round
trip, and a committed event is always queued: by a relay, or by the sweeper when a relay died
between its claim and the queue.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from datetime import timedelta

from celery import Task
from flask import Flask, current_app

from webapp import billing, jobs
from webapp.billing import EventOutcome

log = logging.getLogger(__name__)


def retry_delay(retries: int, base: float, cap: float = 1800.0) -> float:
    """Exponential backoff with jitter: base·2^retries, at most `cap` (under Redis's one-hour
    visibility timeout, past which a waiting retry would be handed out twice)."""
    delay = min(cap, base * 2**retries)
    return delay * random.uniform(0.75, 1.0)  # noqa: S311 (spreading retries, not secrecy)


@jobs.job("webhooks.process", bind=True, max_retries=None)
def process_webhook(task: Task, event_id: str) -> EventOutcome:
    """Apply the ledger's event `event_id`; on failure retry with backoff, a bounded number of
    times, then leave the row `failed` for `flask webhooks replay`.

    In-process (no broker) the outcome goes back to the webhook request, which answers 500 on a
    failure so that Stripe retries, as a single process always did.
    """
    outcome = billing.process_stored_event(event_id)
    if outcome.status != "failed" or task.request.is_eager:
        return outcome
    delay = plan_retry(event_id, task.request.retries, outcome.error)
    if delay is None:
        return outcome
    raise task.retry(countdown=delay, max_retries=None)


def plan_retry(event_id: str, retries: int, error: str | None) -> float | None:
    """After a failed attempt: seconds until the next one, noted in the ledger (where the
    sweeper finds a retry the broker lost), or None when the retries are spent."""
    config = current_app.config
    if retries >= config["WEBHOOK_MAX_RETRIES"]:
        billing.schedule_retry(event_id, None)
        log.error(
            "webhook %s failed %d times; left failed for `flask webhooks replay`: %s",
            event_id,
            retries + 1,
            error,
        )
        return None
    delay = retry_delay(retries, config["WEBHOOK_RETRY_BASE_SECONDS"])
    billing.schedule_retry(event_id, timedelta(seconds=delay))
    log.warning("webhook %s failed (%s); retry in %.1f s", event_id, error, delay)
    return delay


@jobs.job("webhooks.sweep")
def sweep_webhooks(older_than_seconds: float | None = None) -> list[str]:
    """Queue again every event waiting as `received` for longer than WEBHOOK_SWEEP_AFTER_SECONDS
    (the broker was down when it arrived, or its message was lost), and every `failed` one
    whose retry is as late; the ids queued."""
    if older_than_seconds is None:
        older_than_seconds = current_app.config["WEBHOOK_SWEEP_AFTER_SECONDS"]
    event_ids = billing.claim_stale_events(timedelta(seconds=older_than_seconds))
    for event_id in event_ids:
        jobs.enqueue("webhooks.process", event_id)
    if event_ids:
        log.warning("webhook sweep: queued %d waiting event(s) again", len(event_ids))
    return event_ids


@jobs.job("webhooks.dispatch")
def dispatch_received(batch: int = 500, stopping: Callable[[], bool] = lambda: False) -> int:
    """Queue `webhooks.process` for every waiting event not handed to the queue yet; the number
    queued. When the broker refuses one, the batch's unqueued events are released for the next
    round, and the error goes up."""
    queued = 0
    while not stopping():
        event_ids = billing.claim_undispatched_events(batch)
        for position, event_id in enumerate(event_ids):
            try:
                jobs.enqueue("webhooks.process", event_id)
            except Exception:
                billing.release_claims(event_ids[position:])
                raise
        queued += len(event_ids)
        if len(event_ids) < batch:
            break
    return queued


# After a failed round the relay waits longer each time (a broker or database outage), up to
# this many seconds, so its log says so once a while rather than twice a second.
RELAY_MAX_PAUSE = 30.0


@jobs.worker_service
def start_relay(app: Flask) -> Callable[[], None]:
    """The relay of this worker: `webhooks.dispatch` every WEBHOOK_DISPATCH_SECONDS, in a thread
    of its own (a queued tick would wait behind the very backlog it should add to)."""
    stopped = threading.Event()
    interval = app.config["WEBHOOK_DISPATCH_SECONDS"]

    def relay() -> None:
        pause = interval
        while not stopped.wait(pause):
            try:
                with app.app_context():
                    queued = dispatch_received(stopping=stopped.is_set)
            except Exception:  # a database or broker outage: log it, try again later
                pause = min(RELAY_MAX_PAUSE, max(pause, interval) * 2)
                log.exception("webhook relay: round failed; next in %.1f s", pause)
                continue
            pause = interval
            if queued:
                log.info("webhook relay: queued %d event(s)", queued)

    thread = threading.Thread(target=relay, name="webhook-relay", daemon=True)
    thread.start()

    def stop() -> None:
        stopped.set()
        thread.join(timeout=10)

    return stop
