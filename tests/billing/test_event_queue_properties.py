"""Webhooks through the job queue under any delivery, loss, crash and sweep (hypothesis, stateful).

The invariant (webapp/billing/events.py): every event the endpoint answered 200 for has its
effects applied at most once, always, and exactly once, eventually.

Two members pay through the sandbox (one renews a month later, one upgrades), with webhooks held
back. Then hypothesis plays Stripe and the workers against a site in queued mode (a real Celery
publish to an in-memory broker, read back as a worker reads it): deliveries of any event, again
and in any order; the relay queueing what was recorded, or dying right after its claim; workers
that take any queued message, process it, crash half-way through the effects (retried), or die
after committing (the message comes back); messages the broker loses; sweeps. After every step
no grant is written twice and no member holds more than Stripe's state warrants. At the end
Stripe delivers whatever it still has, the sweeper and the workers drain the queue, and the
site's state is what delivering every event once, in order, in-process gives: the same
subscriptions and sessions, and each invoice's months holding the same credits.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import text

from tests.billing_helpers import post_event, sandbox_events, subscribe, take_queued_event_ids
from tests.conftest import AuthActions, create_user, make_app, sql
from tests.test_webhooks import state
from webapp import billing
from webapp.extensions import db
from webapp.stripe_gateway import get_gateway
from webapp.webhooks.jobs import dispatch_received, plan_retry, sweep_webhooks

RESET = (
    "delete from outgoing_mail",
    "delete from webhook_events",
    "delete from credit_entries",
    "delete from invoice_lines",
    "delete from invoices",
    "delete from subscriptions",
    "update checkout_sessions set status = 'open'",
    "update users set credits_low_notified = false",
)


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"SANDBOX_DELIVER_TO_SELF": False}  # Stripe's events wait for hypothesis


def _story(app: Flask) -> None:
    """Ada pays monthly and renews; Bob pays and upgrades (a `customer.subscription.updated`)."""
    for email, plan in (("ada@example.com", "starter"), ("bob@example.com", "professional")):
        create_user(app, email=email)
        client = app.test_client()
        AuthActions(app, client).login(email=email)
        subscribe(client, plan, "monthly")
    with app.app_context():
        gateway = get_gateway()
        [bob] = sql(app, "select stripe_customer_id from users where email = 'bob@example.com'")
        [subscription] = gateway.list_subscriptions(bob[0])
        item = gateway.retrieve_subscription(subscription.id)["items"]["data"][0]
        gateway.update_subscription(
            subscription.id,
            items=[{"id": item.id, "price": gateway.price_for("business_monthly").id}],
            proration_behavior="create_prorations",
        )
    client = app.test_client()
    assert client.post("/sandbox/control/advance", json={"days": 31}).status_code == 200


def _reset(app: Flask) -> None:
    with app.app_context():
        for statement in RESET:
            db.session.execute(text(statement))
        db.session.commit()


def _deliver_in_order(app: Flask, events: list[dict]) -> dict[str, Any]:
    """The reference: every event once, in order, processed in-process (no broker)."""
    client = app.test_client()
    for event in events:
        assert post_event(client, event).status_code == 200
    return state(app)


class Worker:
    """A queue worker in this process: reads the site's real Celery messages, runs the job."""

    def __init__(self, site: Flask) -> None:
        self.site = site
        self.inbox: list[str] = []  # event ids of the messages taken off the broker, not acked

    def fetch(self) -> None:
        self.inbox.extend(take_queued_event_ids(self.site))

    def process(self, event_id: str, retries: int = 0) -> str:
        """The `webhooks.process` job: a failure notes its retry (due at once: no backoff)."""
        with self.site.app_context():
            outcome = billing.process_stored_event(event_id)
            if outcome.status == "failed":
                assert plan_retry(event_id, retries, outcome.error) is not None
            return outcome.status


@contextmanager
def crash_while_applying() -> Iterator[None]:
    """The worker dies half-way through the effects: the subscription is written, the credits
    are not (the transaction rolls back, as after a real crash)."""
    original = billing.sync.settle_subscription

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("worker killed half-way")

    billing.sync.settle_subscription = crash
    try:
        yield
    finally:
        billing.sync.settle_subscription = original


def _month_of(grant_key: str) -> str:
    """`credits:<invoice>:<month start>` of a grant key `credits:<invoice>:<month start>:<n>`."""
    return grant_key.rsplit(":", 1)[0]


def _by_month(credits: list[tuple[int, str]]) -> dict[str, int]:
    """Each (invoice, month)'s credits; a month that nets to nothing is the same as one never
    written (a first payment seen after the renewal that gave its time back writes nothing)."""
    months: dict[str, int] = {}
    for amount, grant_key in credits:
        months[_month_of(grant_key)] = months.get(_month_of(grant_key), 0) + amount
    return {month: total for month, total in months.items() if total}


def _comparable(site_state: dict[str, Any]) -> dict[str, Any]:
    """The state with each (invoice, month)'s credits summed: settling writes the difference
    between what a month bought and what the ledger holds, so the entries that get there
    depend on the order the invoices arrived in (a renewal whose proration credit gives back
    time of an earlier invoice not yet seen nets that out on itself; the earlier invoice's
    arrival then moves it back), while each month's sum may not."""
    return {**site_state, "credits": _by_month(site_state["credits"])}


def _credits_by_member(app: Flask) -> dict[int, int]:
    rows = sql(app, "select user_id, sum(amount) from credit_entries group by user_id")
    return {user_id: int(total) for user_id, total in rows}


class QueuedWebhooks(RuleBasedStateMachine):
    app: Flask
    site: Flask
    events: list[dict]
    reference: dict[str, Any]
    allowed_by_member: dict[int, int]
    allowed_months: set[str]

    def __init__(self) -> None:
        super().__init__()
        _reset(self.app)
        self.worker = Worker(self.site)
        self.client = self.site.test_client()
        self.answered: set[str] = set()

    @rule(index=st.integers(min_value=0))
    def stripe_delivers(self, index: int) -> None:
        event = self.events[index % len(self.events)]
        response = post_event(self.client, event)
        assert response.status_code == 200, response.get_data(as_text=True)
        # Queued mode: answered without processing (or "duplicate"/"ignored" at once).
        assert response.get_json()["message"] in ("received", "duplicate", "ignored")
        self.answered.add(event["id"])

    @rule()
    def relay_runs(self) -> None:
        with self.site.app_context():
            dispatch_received()
        self.worker.fetch()

    @rule()
    def relay_dies_after_its_claim(self) -> None:
        """The relay commits its claim and dies before publishing: only the sweeper finds
        those events now."""
        with self.site.app_context():
            billing.claim_undispatched_events()

    @rule(index=st.integers(min_value=0))
    def worker_processes(self, index: int) -> None:
        if not self.worker.inbox:
            return
        event_id = self.worker.inbox.pop(index % len(self.worker.inbox))
        if self.worker.process(event_id) == "failed":
            self.worker.inbox.append(event_id)  # the job's retry

    @rule(index=st.integers(min_value=0))
    def worker_crashes_half_way(self, index: int) -> None:
        if not self.worker.inbox:
            return
        event_id = self.worker.inbox[index % len(self.worker.inbox)]
        with crash_while_applying():
            self.worker.process(event_id)  # failed, or a duplicate if already applied
        # The message stays: a retry (or, the worker being gone, the broker's redelivery).

    @rule(index=st.integers(min_value=0))
    def worker_dies_after_commit(self, index: int) -> None:
        """Processed and committed, killed before the ack: the broker hands the message out
        again (acks_late), so the event is processed a second time."""
        if not self.worker.inbox:
            return
        event_id = self.worker.inbox[index % len(self.worker.inbox)]
        self.worker.process(event_id)

    @rule(index=st.integers(min_value=0))
    def broker_loses_a_message(self, index: int) -> None:
        if self.worker.inbox:
            self.worker.inbox.pop(index % len(self.worker.inbox))

    @rule()
    def sweeper_runs(self) -> None:
        with self.site.app_context():
            sweep_webhooks(0)
        self.worker.fetch()

    @invariant()
    def every_answered_event_is_in_the_ledger(self) -> None:
        held = {row[0] for row in sql(self.app, "select id from webhook_events")}
        assert self.answered <= held

    @invariant()
    def effects_at_most_once(self) -> None:
        doubled = sql(
            self.app,
            "select grant_key, count(*) from credit_entries group by grant_key having count(*) > 1",
        )
        assert doubled == []
        # Never more than the money warrants: each member holds at most what every event once,
        # in order, gives them, and only for the invoices that run granted for.
        held = _credits_by_member(self.app)
        for member, amount in held.items():
            assert amount <= self.allowed_by_member.get(member, 0), (member, amount, held)
        for grant_key, amount in sql(self.app, "select grant_key, amount from credit_entries"):
            assert _month_of(grant_key) in self.allowed_months, (grant_key, amount)

    def teardown(self) -> None:
        """Eventually: Stripe retries what it has until a 200, the sweeper finds what the
        broker lost, the workers drain the queue; then the state is the in-order one."""
        for event in self.events:
            if event["id"] not in self.answered:
                assert post_event(self.client, event).status_code == 200
        with self.site.app_context():
            dispatch_received()
        self.worker.fetch()
        for _round in range(3):
            while self.worker.inbox:
                assert self.worker.process(self.worker.inbox.pop(0)) != "failed"
            with self.site.app_context():
                sweep_webhooks(0)
            self.worker.fetch()
        statuses = sql(self.app, "select status, count(*) from webhook_events group by status")
        assert {status for status, _count in statuses} <= {"processed", "ignored"}, statuses
        assert _comparable(state(self.app)) == _comparable(self.reference)


def test_every_received_event_is_applied_exactly_once_eventually(app: Flask, database_url: str):
    _story(app)
    events = [e for e in sandbox_events(app) if not e["type"].startswith(("product.", "price."))]
    types = {e["type"] for e in events}
    assert {"invoice.paid", "customer.subscription.updated"} <= types, types
    assert len([e for e in events if e["type"] == "invoice.paid"]) >= 3
    _reset(app)
    reference = _deliver_in_order(app, events)
    assert len(reference["credits"]) >= 3  # the first payments and Ada's renewal
    site = make_app(
        database_url,
        SANDBOX_DELIVER_TO_SELF=False,
        JOBS_BROKER_URL="memory://",
        JOBS_QUEUE=f"test-{uuid.uuid4().hex}",
        WEBHOOK_RETRY_BASE_SECONDS=0,
    )
    QueuedWebhooks.app, QueuedWebhooks.site = app, site
    QueuedWebhooks.events, QueuedWebhooks.reference = events, reference
    QueuedWebhooks.allowed_by_member = _credits_by_member(app)
    QueuedWebhooks.allowed_months = {_month_of(key) for _amount, key in reference["credits"]}
    try:
        run_state_machine_as_test(
            QueuedWebhooks,
            settings=settings(
                max_examples=12,
                stateful_step_count=25,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
            ),
        )
    finally:
        with site.app_context():
            db.session.remove()
            db.engine.dispose()
