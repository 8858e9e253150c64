"""The ledger as the webhooks' outbox: the endpoint only records, a relay queues.

With a broker the endpoint answers after one commit and publishes nothing; `webhooks.dispatch`
(run by a relay thread in every queue worker) claims each recorded event once and queues it;
an event a relay claimed and never queued waits for the sweeper. A real worker process doing
all of it end to end is in test_webhook_worker.py.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from celery.signals import worker_process_init
from flask import Flask
from kombu.exceptions import OperationalError as BrokerUnavailable
from sqlalchemy import text

from tests.billing_helpers import post_event, take_queued_event_ids
from tests.conftest import make_app, sql
from webapp import billing
from webapp.extensions import db
from webapp.models import WebhookEvent
from webapp.models.base import utcnow
from webapp.webhooks.jobs import dispatch_received, start_relay, sweep_webhooks


def _event(n: int) -> dict[str, Any]:
    """An `invoice.paid` we process (so it waits as `received`), about no real invoice."""
    return {
        "id": f"evt_relay_{n}_{uuid.uuid4().hex[:8]}",
        "object": "event",
        "type": "invoice.paid",
        "created": int(time.time()),
        "data": {"object": {"id": f"in_relay_{n}", "object": "invoice"}},
        "livemode": False,
    }


@pytest.fixture
def site(app: Flask, database_url: str) -> Iterator[Flask]:
    """The site with a broker (Celery's in-memory transport) and a queue of this test's own."""
    queued = make_app(
        database_url,
        SANDBOX_DELIVER_TO_SELF=False,
        JOBS_BROKER_URL="memory://",
        JOBS_QUEUE=f"test-relay-{uuid.uuid4().hex}",
        WEBHOOK_DISPATCH_SECONDS=0.05,
    )
    yield queued
    with queued.app_context():
        db.session.remove()
        db.engine.dispose()


def test_the_endpoint_only_records_and_the_relay_queues_each_event_once(app, site):
    events = [_event(n) for n in range(3)]
    client = site.test_client()
    for event in events:
        answer = post_event(client, event)
        assert answer.status_code == 200 and answer.get_json()["message"] == "received"
    assert take_queued_event_ids(site) == []  # the request published nothing
    with site.app_context():
        assert dispatch_received() == 3
        assert dispatch_received() == 0  # claimed once
    assert sorted(take_queued_event_ids(site)) == sorted(event["id"] for event in events)
    assert sql(app, "select count(*) from webhook_events where queued_at is null") == [(0,)]
    # Stripe delivers a queued event again (its message may be lost): a fresh attempt, once.
    assert post_event(client, events[0]).get_json()["message"] == "received"
    with site.app_context():
        assert dispatch_received() == 1
        assert dispatch_received() == 0
    assert take_queued_event_ids(site) == [events[0]["id"]]


def test_the_relay_queues_in_batches_until_nothing_is_left(site):
    client = site.test_client()
    events = [_event(n) for n in range(5)]
    for event in events:
        post_event(client, event)
    with site.app_context():
        assert dispatch_received(batch=2) == 5
    assert sorted(take_queued_event_ids(site)) == sorted(event["id"] for event in events)


def test_events_a_dying_relay_claimed_are_queued_by_the_sweeper(app, site):
    event = _event(0)
    post_event(site.test_client(), event)
    with site.app_context():
        assert billing.claim_undispatched_events() == [event["id"]]  # then the relay dies
        assert dispatch_received() == 0
        assert sweep_webhooks(3600) == []  # not late yet
        assert sweep_webhooks(0) == [event["id"]]
    assert take_queued_event_ids(site) == [event["id"]]


def test_a_failed_event_waits_for_its_retry_unless_stripe_delivers_it_again(app, site):
    client = site.test_client()
    failing, ignored = _event(0), {**_event(1), "type": "customer.created"}
    post_event(client, failing)
    post_event(client, ignored)
    with site.app_context():
        assert billing.claim_undispatched_events() == [failing["id"]]  # ignored: never
        db.session.execute(  # the worker's attempt failed; its retry is scheduled
            WebhookEvent.__table__.update()
            .where(WebhookEvent.id == failing["id"])
            .values(status="failed", next_attempt_at=utcnow())
        )
        db.session.commit()
        assert billing.claim_undispatched_events() == []  # the retry's, not the relay's
    again = post_event(client, failing)  # a Stripe retry, or a Resend from the Dashboard
    assert again.status_code == 200
    with site.app_context():
        assert billing.claim_undispatched_events() == [failing["id"]]


def test_a_broker_that_refuses_leaves_the_batch_to_the_next_round(app, database_url):
    down = make_app(
        database_url,
        SANDBOX_DELIVER_TO_SELF=False,
        JOBS_BROKER_URL="redis://127.0.0.1:1/0",  # nothing listens there
    )
    try:
        events = [_event(n) for n in range(3)]
        for event in events:
            assert post_event(down.test_client(), event).get_json()["message"] == "received"
        with down.app_context(), pytest.raises(BrokerUnavailable):
            dispatch_received()
    finally:
        with down.app_context():
            db.session.remove()
            db.engine.dispose()
    # Not stranded until the sweeper: the next round (a broker back up) takes all three.
    assert sql(app, "select count(*) from webhook_events where queued_at is null") == [(3,)]


def test_a_prefork_child_opens_its_own_connections(site):
    with site.app_context():
        db.session.scalar(text("SELECT 1"))
        db.session.remove()
        inherited = db.engine.pool
    worker_process_init.send(sender=None)  # what Celery's prefork pool sends in a new child
    with site.app_context():
        assert db.engine.pool is not inherited


def test_a_worker_runs_its_relay_until_it_stops(site):
    event = _event(0)
    stop = start_relay(site)
    try:
        post_event(site.test_client(), event)
        deadline, taken = time.monotonic() + 10, []
        while not taken and time.monotonic() < deadline:
            time.sleep(0.05)
            taken = take_queued_event_ids(site)
    finally:
        stop()
    assert taken == [event["id"]]
    assert not [t for t in threading.enumerate() if t.name == "webhook-relay"]


def test_two_relays_at_once_claim_each_event_once(app, site, database_url):
    """Two hosts' relays (two apps, two connection pools) claim from one ledger at once."""
    client = site.test_client()
    events = [_event(n) for n in range(60)]
    for event in events:
        post_event(client, event)
    other = make_app(database_url, JOBS_BROKER_URL="memory://", JOBS_QUEUE="unused")
    barrier = threading.Barrier(2)

    def relay(host: Flask) -> list[str]:
        claimed: list[str] = []
        with host.app_context():
            barrier.wait()
            while batch := billing.claim_undispatched_events(7):
                claimed.extend(batch)
        return claimed

    try:
        with ThreadPoolExecutor(2) as pool:
            first, second = pool.map(relay, [site, other])
    finally:
        with other.app_context():
            db.session.remove()
            db.engine.dispose()
    assert not set(first) & set(second)
    assert sorted(first + second) == sorted(event["id"] for event in events)
