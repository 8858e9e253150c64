"""`POST /webhooks/stripe`: exempt from CSRF, because Stripe's signature is its proof."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy.exc import OperationalError

from webapp import billing
from webapp.extensions import csrf, db
from webapp.stripe_gateway import SignatureVerificationFailed, get_gateway

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
log = logging.getLogger(__name__)


def _reply(status: int, message: str) -> tuple[Response, int]:
    return jsonify(received=status == 200, message=message), status


def webhook_secrets() -> list[str]:
    """The signing secrets, comma-separated while a secret is being rotated."""
    raw = current_app.config.get("STRIPE_WEBHOOK_SECRET") or ""
    return [secret.strip() for secret in raw.split(",") if secret.strip()]


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
    try:
        outcome = billing.process_event(event)
    except OperationalError:
        db.session.rollback()
        log.exception("webhook %s: database unavailable", event.get("id"))
        return _reply(503, "database unavailable; retry later")
    log.info("webhook %s (%s): %s", event["id"], event["type"], outcome.status)
    if outcome.status == "failed":
        return _reply(500, "processing failed; retry later")
    return _reply(200, outcome.status)
