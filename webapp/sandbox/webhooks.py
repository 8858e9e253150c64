"""Webhook delivery: every event to every endpoint, signed as Stripe signs, retried until 2xx.

Deliveries are rows in `sandbox_deliveries`, written in the same transaction as their events, so
none is lost. A worker claims a row with a short lease before sending it, so several processes
(gunicorn workers) never send the same row twice at once, and a row whose worker died is taken
over when its lease runs out.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from flask import Flask, g, has_request_context
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session
from werkzeug.test import EnvironBuilder, run_wsgi_app

from webapp.sandbox.models import SandboxDelivery, SandboxEvent

if TYPE_CHECKING:
    from webapp.sandbox import Sandbox

log = logging.getLogger(__name__)

SELF_ENDPOINT = "/webhooks/stripe"  # this site's own endpoint, reached in-process
LEASE_SECONDS = 30
GIVE_UP_AFTER_SECONDS = 3 * 24 * 3600  # Stripe retries for up to three days
DELIVERY_TIMEOUT_SECONDS = 10


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header: `t=<unix time>,v1=<hex HMAC-SHA256 of "t.payload">`."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def backoff_seconds(attempts: int) -> float:
    """1 s, 2 s, 4 s … up to an hour between attempts."""
    return float(min(2 ** max(attempts - 1, 0), 3600))


class Webhooks:
    """Queues, signs and sends the sandbox's events."""

    def __init__(self, sandbox: Sandbox, app: Flask) -> None:
        self.sandbox, self.app = sandbox, app
        self._worker: DeliveryWorker | None = None
        self._worker_lock = threading.Lock()
        self._closed = False  # the app let go of its database: no worker from now on

    # --- queueing ---------------------------------------------------------------------------

    def endpoints(self) -> list[str]:
        own = [SELF_ENDPOINT] if self.app.config.get("SANDBOX_DELIVER_TO_SELF", True) else []
        return own + list(self.app.config.get("SANDBOX_WEBHOOK_URLS") or [])

    def queue(self, session: Session, events: list[dict[str, Any]], plan: dict[str, Any]) -> None:
        """Add delivery rows for `events`, shaped by the webhook fault switch in `plan`."""
        mode = plan.get("mode")
        ordered = list(reversed(events)) if mode == "reverse" else events
        now = time.time()
        due = now + float(plan.get("delay", 5)) if mode == "late" else now
        copies = 2 if mode == "duplicate" else 1
        status = "failed" if mode == "lost" else "pending"
        for url in self.endpoints():
            for event in ordered:
                for _ in range(copies):
                    session.add(
                        SandboxDelivery(
                            event_id=event["id"],
                            event_type=event["type"],
                            url=url,
                            status=status,
                            attempts=0,
                            next_attempt_at=due,
                            created_at=now,
                        )
                    )
        session.flush()

    def after_commit(self) -> None:
        """Send what is due now: before this request ends ("sync") or in the background."""
        if self.app.config.get("SANDBOX_WEBHOOK_DELIVERY") == "sync":
            if has_request_context():
                # Inside one of the site's requests: wait until it has finished (and
                # committed), as a webhook from Stripe would arrive after the API call returns.
                g.sandbox_deliver_pending = True
            else:
                self.deliver_due()
        else:
            worker = self.ensure_worker()
            if worker is not None:
                worker.wake()

    def deliver_after_request(self, _exc: BaseException | None = None) -> None:
        if g.pop("sandbox_deliver_pending", False):
            self.deliver_due()

    # --- sending ----------------------------------------------------------------------------

    def deliver_due(self, *, include_late: bool = False) -> int:
        """Send every pending delivery that is due; returns how many got a 2xx."""
        delivered = 0
        tried: set[int] = set()  # each delivery at most once per pass, even when it fails
        for _ in range(100):  # bounded: a busy queue is finished by the next pass
            with Session(self.sandbox.engine) as session:
                query = select(SandboxDelivery.id).where(SandboxDelivery.status == "pending")
                if not include_late:
                    query = query.where(SandboxDelivery.next_attempt_at <= time.time())
                if tried:
                    query = query.where(SandboxDelivery.id.not_in(tried))
                ids = list(session.scalars(query.order_by(SandboxDelivery.id).limit(50)))
            if not ids:
                break
            tried.update(ids)
            sent = [self._deliver(delivery_id) for delivery_id in ids]
            delivered += sum(1 for ok in sent if ok)
            if not any(ok is not None for ok in sent):
                break  # everything was claimed by another worker
        return delivered

    def _claim(self, session: Session, delivery_id: int) -> bool:
        now = time.time()
        result = session.execute(
            update(SandboxDelivery)
            .where(
                SandboxDelivery.id == delivery_id,
                SandboxDelivery.status == "pending",
                or_(SandboxDelivery.locked_until.is_(None), SandboxDelivery.locked_until < now),
            )
            .values(locked_until=now + LEASE_SECONDS)
        )
        session.commit()
        return result.rowcount == 1  # type: ignore[attr-defined]

    def _deliver(self, delivery_id: int) -> bool | None:
        """Send one delivery if this worker can claim it: True on 2xx, False on failure."""
        with Session(self.sandbox.engine) as session:
            if not self._claim(session, delivery_id):
                return None
            delivery = session.get(SandboxDelivery, delivery_id)
            assert delivery is not None
            payload = session.scalar(
                select(SandboxEvent.data).where(SandboxEvent.id == delivery.event_id)
            )
            url, event_type = delivery.url, delivery.event_type
        status, error = self._send(url, (payload or "{}").encode())
        with Session(self.sandbox.engine) as session:
            delivery = session.get(SandboxDelivery, delivery_id)
            assert delivery is not None
            delivery.attempts += 1
            delivery.last_status, delivery.last_error = status, error
            delivery.locked_until = None
            now = time.time()
            ok = status is not None and 200 <= status < 300
            if ok:
                delivery.status, delivery.delivered_at = "delivered", now
            elif now - delivery.created_at > GIVE_UP_AFTER_SECONDS:
                delivery.status = "failed"
            else:
                delivery.next_attempt_at = now + backoff_seconds(delivery.attempts)
            session.commit()
        log.info("sandbox webhook %s %s -> %s", event_type, url, status if status else error)
        return ok

    def _send(self, url: str, payload: bytes) -> tuple[int | None, str | None]:
        secret = self.app.config.get("STRIPE_WEBHOOK_SECRET") or ""
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": sign(payload, secret),
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks) sandbox",
        }
        if url.startswith("/"):
            return self._send_in_process(url, payload, headers)
        request = urllib.request.Request(url, data=payload, headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=DELIVERY_TIMEOUT_SECONDS) as response:  # noqa: S310
                return response.status, None
        except urllib.error.HTTPError as exc:
            return exc.code, None
        except (urllib.error.URLError, OSError) as exc:
            return None, f"{type(exc).__name__}: {exc}"

    def _send_in_process(
        self, path: str, payload: bytes, headers: dict[str, str]
    ) -> tuple[int | None, str | None]:
        # This site's own endpoint: straight into its WSGI app, no socket (a one-worker
        # server would otherwise wait on itself).
        environ = EnvironBuilder(
            path=path,
            method="POST",
            data=payload,
            headers=list(headers.items()),
            environ_base={"REMOTE_ADDR": "127.0.0.1"},
        ).get_environ()
        app_iter, status, _headers = run_wsgi_app(self.app.wsgi_app, environ, buffered=True)
        if hasattr(app_iter, "close"):
            app_iter.close()
        return int(status.split()[0]), None

    # --- the background worker --------------------------------------------------------------

    def ensure_worker(self) -> DeliveryWorker | None:
        """This process's background worker, started if need be; None once `close`d."""
        current = threading.current_thread()
        if isinstance(current, DeliveryWorker) and current.webhooks is self:
            # The worker itself, delivering to this site in process (the request's hooks, the
            # events its handling causes): never a second worker, even while this one stops.
            return current
        with self._worker_lock:
            if self._closed:
                return None
            # After a fork (gunicorn), the parent's thread does not exist in the child.
            if (
                self._worker is None
                or not self._worker.is_alive()
                or self._worker.pid != os.getpid()
            ):
                self._worker = DeliveryWorker(self)
                self._worker.start()
            return self._worker

    def stop_worker(self) -> None:
        """Stop this process's background worker (tests and live servers shutting down)."""
        with self._worker_lock:
            worker, self._worker = self._worker, None
        # Joined outside the lock: a pass in progress may still ask for the worker.
        if worker is not None:
            worker.stop()
            if worker is not threading.current_thread():
                worker.join(5)

    def close(self) -> None:
        """Stop the worker for good: the app has let go of its database (its engine was
        disposed), and a worker started after that would poll tables that may be gone."""
        with self._worker_lock:
            self._closed = True
        self.stop_worker()

    def delivery_log(self, limit: int = 50) -> list[SandboxDelivery]:
        with Session(self.sandbox.engine, expire_on_commit=False) as session:
            query = select(SandboxDelivery).order_by(SandboxDelivery.id.desc()).limit(limit)
            return list(session.scalars(query))


class DeliveryWorker(threading.Thread):
    """Sends due deliveries in the background, waking on new events and every second."""

    def __init__(self, webhooks: Webhooks) -> None:
        super().__init__(name="sandbox-webhooks", daemon=True)
        self.webhooks = webhooks
        self.pid = os.getpid()
        self._wake = threading.Event()
        self._stopped = False

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    def run(self) -> None:
        failures = 0
        while not self._stopped:
            self._wake.wait(timeout=1.0 if not failures else min(2.0**failures, 30.0))
            self._wake.clear()
            if self._stopped:
                break
            try:
                self.webhooks.deliver_due()
                failures = 0
            except Exception as exc:  # the worker must outlive a database hiccup: back off
                # One line per outage, not one traceback a second.
                if not failures:
                    log.warning("sandbox webhook worker pass failed (will retry): %s", exc)
                failures += 1


def event_payload(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()
