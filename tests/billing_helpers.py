"""Helpers for billing tests: check out and pay as a person would, and post signed events."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.conftest import csrf_token
from webapp.config import SANDBOX_WEBHOOK_SECRET
from webapp.extensions import db
from webapp.sandbox.models import SandboxEvent

VISA_OK = "4242 4242 4242 4242"
VISA_DECLINED = "4000 0000 0000 0002"


def start_checkout(client: FlaskClient, plan: str = "professional", cycle: str = "monthly"):
    token = csrf_token(client, "/pricing")
    return client.post("/checkout", data={"plan": plan, "cycle": cycle, "csrf_token": token})


def pay(client: FlaskClient, checkout_url: str, card: str = VISA_OK):
    """Fill in the sandbox's hosted checkout page (served by the same app in sandbox mode)."""
    path = urlsplit(checkout_url).path
    token = csrf_token(client, path)
    data = {"csrf_token": token, "card_number": card, "expiry": "12 / 34", "cvc": "123"}
    return client.post(path, data=data)


def subscribe(client: FlaskClient, plan: str = "professional", cycle: str = "monthly") -> str:
    """Check out and pay; returns the Checkout Session id from the success URL."""
    started = start_checkout(client, plan, cycle)
    assert started.status_code == 303, started.get_data(as_text=True)
    paid = pay(client, started.headers["Location"])
    assert paid.status_code == 303, paid.get_data(as_text=True)
    success = urlsplit(paid.headers["Location"])
    return parse_qs(success.query)["session_id"][0]


def sandbox_events(app: Flask, types: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Every event the sandbox emitted, oldest first, as Stripe would send them."""
    with app.app_context():
        rows = db.session.scalars(select(SandboxEvent).order_by(SandboxEvent.seq)).all()
        events = [json.loads(row.data) for row in rows]
    return [e for e in events if types is None or e["type"] in types]


def signature(payload: bytes, secret: str = SANDBOX_WEBHOOK_SECRET, at: int | None = None) -> str:
    """Stripe's scheme, written out independently of the sandbox's own signer."""
    timestamp = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def post_event(client: FlaskClient, event: dict[str, Any], **signing: Any):
    payload = json.dumps(event).encode()
    return client.post(
        "/webhooks/stripe",
        data=payload,
        headers={"Stripe-Signature": signature(payload, **signing)},
        content_type="application/json",
    )


def take_queued_event_ids(site: Flask) -> list[str]:
    """The event ids of the `webhooks.process` messages on the site's queue, taken off it and
    acknowledged, as a queue worker takes them."""
    celery = site.extensions["celery"]
    ids = []
    with celery.connection_for_read() as connection:
        queue = connection.SimpleQueue(site.config["JOBS_QUEUE"])
        while True:
            try:
                message = queue.get(block=False)
            except queue.Empty:
                break
            assert message.headers["task"] == "webhooks.process"
            [event_id] = message.payload[0]
            ids.append(event_id)
            message.ack()
        queue.close()
    return ids
