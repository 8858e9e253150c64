"""`POST /webhooks/stripe`: exempt from CSRF, because Stripe's signature is its proof.

Accept fast, process in workers: the endpoint verifies the event, records it in the ledger as
`received` and answers 200 without calling Stripe or the broker; each queue worker's relay queues
it. Stripe asks for a 2xx "quickly … prior to any complex logic", retries a failed delivery for
up to three days and may deliver an event more than once or out of order (docs.stripe.com/webhooks,
"Best practices"): the ledger, not the queue, is the source of truth. Without a broker the job
runs here, during the request, and its outcome is the answer (500 on a failure: Stripe retries).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy.exc import OperationalError

from webapp import billing, jobs
from webapp.billing.events import EVENT_HANDLERS
from webapp.extensions import csrf, db
from webapp.stripe_gateway import SignatureVerificationFailed, get_gateway

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
log = logging.getLogger(__name__)
# Events whose object has no id: `invoice.upcoming` carries an invoice preview, not an invoice.
ID_LESS_EVENTS = frozenset({"invoice.upcoming"})
# The ledger's column sizes: an event id of up to 255 characters, a type of up to 100.
MAX_ID_LENGTH, MAX_TYPE_LENGTH = 255, 100


def _reply(status: int, message: str) -> tuple[Response, int]:
    return jsonify(received=status == 200, message=message), status


def webhook_secrets() -> list[str]:
    """The signing secrets, comma-separated while a secret is being rotated."""
    raw = current_app.config.get("STRIPE_WEBHOOK_SECRET") or ""
    return [secret.strip() for secret in raw.split(",") if secret.strip()]


def _plain_text(value: object, max_length: int) -> bool:
    """A non-empty printable ASCII string (as Stripe's ids and types are) that fits its column;
    the webhook's body skips the edge's character check, so NULs are refused here."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= max_length
        and value.isascii()
        and value.isprintable()
    )


def malformed_event_problem(event: dict[str, Any]) -> str | None:
    """What is wrong with a verified event's shape, or None: the fields we read and store must
    have Stripe's types before they reach the ledger."""
    if not _plain_text(event["id"], MAX_ID_LENGTH):
        return "id must be a short string"
    if not _plain_text(event["type"], MAX_TYPE_LENGTH):
        return "type must be a short string"
    created = event["created"]
    if not isinstance(created, int) or isinstance(created, bool) or not 0 <= created < 2**53:
        return "created must be a Unix timestamp"
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        return "data.object must be an object"
    object_id = obj.get("id")
    needs_id = event["type"] in EVENT_HANDLERS and event["type"] not in ID_LESS_EVENTS
    if not isinstance(object_id, str | None) or (not object_id and needs_id):
        return "data.object.id must be a string"
    return None


@bp.post("/stripe")
@csrf.exempt
def stripe_webhook() -> tuple[Response, int]:
    secrets = webhook_secrets()
    if not secrets:
        # Fail closed: without a secret nothing can be verified, so nothing is trusted.
        log.error("webhook refused: STRIPE_WEBHOOK_SECRET is not configured")
        return _reply(503, "webhook signing secret not configured")
    payload = request.get_data(cache=False)
    signature = request.headers.get("Stripe-Signature", "")
    try:
        event = get_gateway().verify_webhook(payload, signature, secrets)
    except SignatureVerificationFailed as exc:
        log.warning("webhook refused: %s", exc)
        return _reply(400, "invalid signature")
    problem = malformed_event_problem(event)
    if problem:
        # Signed by a secret of ours, yet not shaped like a Stripe event: a bug or a leaked
        # secret, never something to retry, so 400 (and a log line someone will read).
        log.error("webhook refused: signed but malformed event: %s", problem)
        return _reply(400, f"malformed event: {problem}")
    try:
        receipt = billing.record_received(event)
        if receipt.done:
            # Ignored at once (no effects, no job), or a redelivery of an event already applied.
            return _reply(200, receipt.status if receipt.new else "duplicate")
        status = _process(event["id"])
    except OperationalError:
        db.session.rollback()
        log.exception("webhook %s: database unavailable", event.get("id"))
        return _reply(503, "database unavailable; retry later")
    log.info("webhook %s (%s): %s", event["id"], event["type"], status)
    if status == "failed":
        return _reply(500, "processing failed; retry later")
    return _reply(200, status)


def _process(event_id: str) -> str:
    """With a broker, nothing more: the row is the job (the ledger is the outbox), and a relay
    in each queue worker queues it (webapp/webhooks/jobs.py). Without one, process it now and
    return the outcome, as a single process always did."""
    if not jobs.runs_in_process():
        return "received"
    result = jobs.enqueue("webhooks.process", event_id)
    # Run already, in this thread; Celery refuses get() from threads it thinks are tasks.
    return str(result.get(disable_sync_subtasks=False).status)
