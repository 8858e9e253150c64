"""Webhook delivery: signed like Stripe, retried until 2xx, at least once, across processes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import stripe
from flask import Flask, request
from sqlalchemy import update

from tests.conftest import make_app
from tests.sandbox.helpers import new_checkout, pay, sandbox_of
from webapp.extensions import db
from webapp.sandbox.models import SandboxDelivery
from webapp.stripe_gateway import get_gateway

SECRET = "whsec_test_webhooks"


class Receiver:
    """A real HTTP endpoint that records what it is sent and answers with `statuses` in turn."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(
                    {"body": body, "signature": self.headers.get("Stripe-Signature")}
                )
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def event_ids(self) -> list[str]:
        return [json.loads(item["body"])["id"] for item in self.received]

    def types(self) -> list[str]:
        return [json.loads(item["body"])["type"] for item in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture
def config_overrides(receiver: Receiver) -> dict[str, Any]:
    return {
        "SANDBOX_DELIVER_TO_SELF": False,
        "SANDBOX_WEBHOOK_URLS": [receiver.url],
        "STRIPE_WEBHOOK_SECRET": SECRET,
    }


def deliveries(app: Flask) -> list[SandboxDelivery]:
    return list(reversed(sandbox_of(app).webhooks.delivery_log(500)))


def test_events_arrive_signed_as_stripe_signs(app: Flask, gateway, receiver: Receiver):
    customer = gateway.create_customer(email="w@example.com", user_id=1, idempotency_key="w")
    created = [r for r in receiver.received if b'"customer.created"' in r["body"]]
    assert len(created) == 1
    event = stripe.Webhook.construct_event(created[0]["body"], created[0]["signature"], SECRET)
    assert event.data.object.id == customer.id
    assert event.api_version == stripe.api_version
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(created[0]["body"], created[0]["signature"], "whsec_other")
    assert all(d.status == "delivered" and d.last_status == 200 for d in deliveries(app))


def test_a_failed_delivery_is_retried_with_backoff_until_2xx(app, gateway, receiver):
    gateway.price_for("starter_monthly")  # the catalog sync's events come first
    receiver.received.clear()
    receiver.statuses = [500]
    gateway.create_customer(email="r@example.com", user_id=1, idempotency_key="r")
    log = [d for d in deliveries(app) if d.event_type == "customer.created"]
    assert log[0].status == "pending" and log[0].attempts == 1 and log[0].last_status == 500
    assert log[0].next_attempt_at > time.time()
    assert sandbox_of(app).webhooks.deliver_due() == 0  # not due yet
    time.sleep(1.1)
    assert sandbox_of(app).webhooks.deliver_due() == 1
    log = [d for d in deliveries(app) if d.event_type == "customer.created"]
    assert log[0].status == "delivered" and log[0].attempts == 2
    assert receiver.types().count("customer.created") == 2

    output = app.test_cli_runner().invoke(args=["stripe-sandbox", "events"]).output
    assert "delivered" in output and "customer.created" in output and receiver.url in output


def test_a_paid_checkout_sends_its_events_in_order(app: Flask, gateway, receiver):
    session = new_checkout(gateway)
    receiver.received.clear()
    pay(app.test_client(), session.url)
    types = receiver.types()
    assert types.index("customer.subscription.created") < types.index("invoice.paid")
    assert types[-1] == "checkout.session.completed"


def _arm(app: Flask, **webhooks: Any) -> None:
    response = app.test_client().post("/sandbox/control/faults", json={"webhooks": webhooks})
    assert response.status_code == 200, response.get_data(as_text=True)


def test_duplicate_fault_sends_each_event_twice(app: Flask, gateway, receiver):
    gateway.price_for("starter_monthly")
    receiver.received.clear()
    _arm(app, mode="duplicate")
    gateway.create_customer(email="d@example.com", user_id=1, idempotency_key="d")
    ids = receiver.event_ids()
    assert len(ids) == 2 and ids[0] == ids[1]


def test_reverse_fault_sends_a_change_s_events_newest_first(app: Flask, gateway, receiver):
    session = new_checkout(gateway)
    receiver.received.clear()
    _arm(app, mode="reverse")
    pay(app.test_client(), session.url)
    types = receiver.types()
    assert types[0] == "checkout.session.completed"
    assert types.index("invoice.paid") < types.index("customer.subscription.created")


def test_late_fault_holds_events_back_until_delivered(app: Flask, gateway, receiver):
    gateway.price_for("starter_monthly")
    receiver.received.clear()
    _arm(app, mode="late", delay=600)
    gateway.create_customer(email="l@example.com", user_id=1, idempotency_key="l")
    assert receiver.received == []
    client = app.test_client()
    assert client.post("/sandbox/control/deliver", json={}).get_json() == {"delivered": 0}
    assert client.post("/sandbox/control/deliver", json={"include_late": True}).get_json() == {
        "delivered": 1
    }
    assert receiver.types() == ["customer.created"]


def test_own_endpoint_is_reached_in_process_with_a_valid_signature(database_url, _schema):
    """The site's own /webhooks/stripe is called through its WSGI app, not a socket."""
    from tests.conftest import _empty_all_tables

    app = make_app(database_url, STRIPE_WEBHOOK_SECRET=SECRET)
    seen: list[tuple[bytes, str]] = []

    @app.before_request
    def record() -> None:
        if request.path == "/webhooks/stripe":
            seen.append((request.get_data(), request.headers.get("Stripe-Signature", "")))

    try:
        with app.app_context():
            get_gateway().create_customer(email="own@example.com", user_id=1, idempotency_key="o")
        assert seen, "no delivery reached /webhooks/stripe"
        for body, signature in seen:
            stripe.Webhook.construct_event(body, signature, SECRET)
        own = [d for d in deliveries(app) if d.url == "/webhooks/stripe"]
        assert own and all(d.last_status is not None for d in own)
    finally:
        with app.app_context():
            db.engine.dispose()
        _empty_all_tables(database_url)


def test_thread_mode_delivers_in_the_background(database_url, _schema, receiver):
    from tests.conftest import _empty_all_tables

    app = make_app(
        database_url,
        SANDBOX_DELIVER_TO_SELF=False,
        SANDBOX_WEBHOOK_URLS=[receiver.url],
        SANDBOX_WEBHOOK_DELIVERY="thread",
        STRIPE_WEBHOOK_SECRET=SECRET,
    )
    try:
        with app.app_context():
            get_gateway().create_customer(email="bg@example.com", user_id=1, idempotency_key="b")
        deadline = time.monotonic() + 10
        while "customer.created" not in receiver.types() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "customer.created" in receiver.types()
    finally:
        sandbox_of(app).webhooks.stop_worker()
        with app.app_context():
            db.engine.dispose()
        _empty_all_tables(database_url)


def test_two_workers_never_send_a_delivery_twice(app: Flask, database_url, receiver):
    """Two apps on one database stand in for two gunicorn workers draining one queue."""
    _arm(app, mode="late", delay=600, count=100)
    with app.app_context():
        gateway = get_gateway()
        gateway.price_for("starter_monthly")  # about a dozen catalog events, held back
    receiver.received.clear()
    other = make_app(
        database_url,
        SANDBOX_DELIVER_TO_SELF=False,
        SANDBOX_WEBHOOK_URLS=[receiver.url],
        STRIPE_WEBHOOK_SECRET=SECRET,
    )
    with app.app_context():
        db.session.execute(update(SandboxDelivery).values(next_attempt_at=0))
        db.session.commit()
    workers = [
        threading.Thread(target=sandbox_of(one).webhooks.deliver_due) for one in (app, other, app)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    ids = receiver.event_ids()
    assert len(ids) >= 10 and len(ids) == len(set(ids))
    with other.app_context():
        db.engine.dispose()


def test_a_dead_worker_s_claim_runs_out_and_another_sends_it(app: Flask, gateway, receiver):
    _arm(app, mode="late", delay=600)
    gateway.create_customer(email="dead@example.com", user_id=1, idempotency_key="z")
    with app.app_context():
        # A worker claimed it and died: the lease is in the past, the row still pending.
        db.session.execute(
            update(SandboxDelivery).values(next_attempt_at=0, locked_until=time.time() - 1)
        )
        db.session.commit()
    receiver.received.clear()
    assert sandbox_of(app).webhooks.deliver_due() >= 1
    assert "customer.created" in receiver.types()


def test_a_live_claim_is_respected(app: Flask, gateway, receiver):
    _arm(app, mode="late", delay=600)
    gateway.create_customer(email="busy@example.com", user_id=1, idempotency_key="y")
    with app.app_context():
        db.session.execute(
            update(SandboxDelivery).values(next_attempt_at=0, locked_until=time.time() + 60)
        )
        db.session.commit()
    receiver.received.clear()
    assert sandbox_of(app).webhooks.deliver_due() == 0
    assert receiver.received == []


def _live_workers(app: Flask) -> list[threading.Thread]:
    from webapp.sandbox.webhooks import DeliveryWorker

    webhooks = sandbox_of(app).webhooks
    return [
        t
        for t in threading.enumerate()
        if isinstance(t, DeliveryWorker) and t.webhooks is webhooks and t.is_alive()
    ]


def test_no_worker_outlives_the_apps_database(database_url, _schema):
    """Disposing the engine (a test or a server letting go of the app) stops the worker for
    good: a late request cannot start one that would poll a database about to be dropped."""
    from tests.conftest import _empty_all_tables

    app = make_app(database_url, SANDBOX_WEBHOOK_DELIVERY="thread", STRIPE_WEBHOOK_SECRET=SECRET)
    try:
        assert app.test_client().get("/healthz").status_code == 200
        assert len(_live_workers(app)) == 1
        with app.app_context():
            db.engine.dispose()
        assert _live_workers(app) == []
        app.test_client().get("/healthz")  # e.g. a request still in flight on a live server
        assert _live_workers(app) == []
    finally:
        sandbox_of(app).webhooks.stop_worker()
        with app.app_context():
            db.engine.dispose()
        _empty_all_tables(database_url)


def test_stopping_the_worker_mid_delivery_to_the_site_starts_no_other(database_url, _schema):
    """The worker's own in-process deliveries run the site's request hooks, which ask for the
    worker: while it stops, that must neither wait for the stop nor start a second worker."""
    from tests.conftest import _empty_all_tables
    from webapp.sandbox.webhooks import DeliveryWorker

    app = make_app(database_url, SANDBOX_WEBHOOK_DELIVERY="thread", STRIPE_WEBHOOK_SECRET=SECRET)
    inside, release = threading.Event(), threading.Event()

    @app.before_request
    def hold_the_first_delivery() -> None:
        worker = isinstance(threading.current_thread(), DeliveryWorker)
        if worker and request.path == "/webhooks/stripe" and not inside.is_set():
            inside.set()
            release.wait(10)

    try:
        with app.app_context():
            for n in range(3):  # more deliveries to the site than the one held
                get_gateway().create_customer(
                    email=f"c{n}@example.com", user_id=n + 1, idempotency_key=f"mid-{n}"
                )
        assert inside.wait(20), "the worker never delivered to the site"
        stopper = threading.Thread(target=sandbox_of(app).webhooks.stop_worker)
        started = time.monotonic()
        stopper.start()
        time.sleep(0.2)
        release.set()
        stopper.join(10)
        assert time.monotonic() - started < 3, "stopping waited for the worker's own request"
        time.sleep(0.5)
        assert _live_workers(app) == []
    finally:
        release.set()
        sandbox_of(app).webhooks.stop_worker()
        with app.app_context():
            db.engine.dispose()
        _empty_all_tables(database_url)
