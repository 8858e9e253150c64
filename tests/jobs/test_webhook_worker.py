"""A real Celery worker on the real Redis applies webhooks end to end (PostgreSQL in CI; a
SQLite file works too).

The site answers each delivery at once (`received`, no Stripe call), the worker process started
with README's command applies it once, a Stripe failure is retried with backoff, and a delivery
while no worker runs waits as `received` until one starts.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from tests.billing_helpers import pay as pay_on_hosted_page
from tests.billing_helpers import post_event, sandbox_events, start_checkout
from tests.conftest import AuthActions, create_user, make_app, sql
from webapp import billing
from webapp.extensions import db

ROOT = Path(__file__).resolve().parents[2]
REDIS = "redis://127.0.0.1:6379"


@pytest.fixture
def config_overrides():
    return {"SANDBOX_DELIVER_TO_SELF": False}  # this test delivers the events itself


@pytest.fixture
def broker() -> Iterator[tuple[str, str]]:
    """A Redis db picked at random and a queue name of this test's own (nothing flushed)."""
    try:
        redis.Redis.from_url(REDIS, socket_connect_timeout=2).ping()
    except redis.ConnectionError:
        pytest.fail("Redis at 127.0.0.1:6379 is required (README, Testing)")
    url = f"{REDIS}/{random.randint(2, 15)}"
    queue = f"test-webhooks-{uuid.uuid4().hex}"
    yield url, queue
    redis.Redis.from_url(url).delete(queue)


@pytest.fixture
def site(database_url, broker):
    url, queue = broker
    app = make_app(
        database_url, SANDBOX_DELIVER_TO_SELF=False, JOBS_BROKER_URL=url, JOBS_QUEUE=queue
    )
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


class CeleryWorker:
    """`celery -A webapp.jobs.worker worker` (README "Deploying") in a process of its own."""

    def __init__(self, database_url: str, broker: tuple[str, str], log: Path) -> None:
        url, queue = broker
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": database_url,
            "JOBS_BROKER_URL": url,
            "JOBS_QUEUE": queue,
            "SANDBOX_DELIVER_TO_SELF": "false",
            "WEBHOOK_RETRY_BASE_SECONDS": "0.5",
            "STRIPE_MAX_NETWORK_RETRIES": "0",  # a Stripe 500 fails the job, not just a call
        }
        self.log = log
        command = [
            str(Path(sys.executable).with_name("celery")),
            "-A",
            "webapp.jobs.worker",
            "worker",
            "--concurrency=1",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            f"--hostname=test-{uuid.uuid4().hex[:8]}@%h",
            "--loglevel=INFO",
        ]
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def start_worker(database_url, broker, tmp_path):
    workers: list[CeleryWorker] = []

    def start() -> CeleryWorker:
        worker = CeleryWorker(database_url, broker, tmp_path / f"worker{len(workers)}.log")
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def wait_until_done(app, event_ids: list[str], worker: CeleryWorker, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = dict(sql(app, "select id, status from webhook_events"))
        if all(rows.get(event_id) in ("processed", "ignored") for event_id in event_ids):
            return
        assert worker.process.poll() is None, worker.log.read_text()[-3000:]
        time.sleep(0.2)
    pytest.fail(f"not processed in time: {rows}\n{worker.log.read_text()[-3000:]}")


def paid_events(app, site) -> list[dict]:
    """Ada pays for Professional monthly through the sandbox; the events Stripe emitted."""
    client = site.test_client()
    create_user(app)
    AuthActions(site, client).login()
    pay_on_hosted_page(client, start_checkout(client).headers["Location"])
    return [e for e in sandbox_events(app) if not e["type"].startswith(("product.", "price."))]


def test_a_real_worker_applies_each_webhook_once_and_retries_a_stripe_failure(
    app, site, start_worker
):
    events = paid_events(app, site)
    [invoice_paid] = [e for e in events if e["type"] == "invoice.paid"]
    client = site.test_client()
    # No worker yet: the site answers every delivery at once and the ledger holds them.
    answers = [post_event(client, event) for event in events]
    assert {a.status_code for a in answers} == {200}
    assert {a.get_json()["message"] for a in answers} <= {"received", "ignored"}
    assert sql(app, "select count(*) from webhook_events where status = 'received'")[0][0] >= 3
    assert sql(app, "select count(*) from credit_entries") == [(0,)]
    # Stripe's next two answers fail: the worker retries with backoff.
    site.extensions["stripe_sandbox"].faults.set_api(2)

    worker = start_worker()
    wait_until_done(app, [e["id"] for e in events], worker)
    assert sql(app, "select count(*), sum(amount) from credit_entries") == [(1, 3000)]
    assert sql(app, "select status from subscriptions") == [("active",)]
    log = worker.log.read_text()
    assert log.count("retry in") == 2, log[-3000:]
    assert site.extensions["stripe_sandbox"].faults.status()["api"] is None  # both spent

    # A redelivery of an applied event: 200 at once, no job, no second effect.
    again = post_event(client, invoice_paid)
    assert again.status_code == 200 and again.get_json()["message"] == "duplicate"
    [(attempts,)] = sql(
        app, "select attempts from webhook_events where id = :id", id=invoice_paid["id"]
    )
    assert sql(app, "select count(*) from credit_entries") == [(1,)]
    assert attempts >= 1


def test_deliveries_while_the_broker_is_down_wait_for_the_sweeper(app, database_url, runner):
    down = make_app(
        database_url,
        SANDBOX_DELIVER_TO_SELF=False,
        JOBS_BROKER_URL="redis://127.0.0.1:1/0",  # nothing listens there
    )
    try:
        events = paid_events(app, down)
        down.extensions["stripe_sandbox"].latency_seconds = 3  # a Stripe call would show
        client = down.test_client()
        started = time.monotonic()
        answers = [post_event(client, e) for e in events if e["type"] == "invoice.paid"]
        assert time.monotonic() - started < 3  # no Stripe call made
        assert [a.status_code for a in answers] == [200]
        assert answers[0].get_json()["message"] == "received"
    finally:
        with down.app_context():
            db.session.remove()
            db.engine.dispose()
    assert sql(app, "select status from webhook_events where type = 'invoice.paid'") == [
        ("received",)
    ]
    # Not old enough yet: the sweeper leaves it.
    assert "queued 0" in runner.invoke(args=["webhooks", "sweep"]).output
    # A host without a broker sweeps and processes in-process.
    result = runner.invoke(args=["webhooks", "sweep", "--older-than", "0"])
    assert result.exit_code == 0 and "queued 1" in result.output, result.output
    assert sql(app, "select status from webhook_events where type = 'invoice.paid'") == [
        ("processed",)
    ]
    assert sql(app, "select count(*), sum(amount) from credit_entries") == [(1, 3000)]


def test_two_workers_racing_on_one_event_apply_it_once(app, other_worker, site):
    """Two workers (two apps, two connection pools) take the same event at the same moment:
    the ledger row's claim lets one apply it; the other finds it done."""
    events = paid_events(app, site)
    [invoice_paid] = [e for e in events if e["type"] == "invoice.paid"]
    assert post_event(site.test_client(), invoice_paid).get_json()["message"] == "received"
    barrier = threading.Barrier(2)

    def work(worker_app) -> str:
        with worker_app.app_context():
            barrier.wait()
            return billing.process_stored_event(invoice_paid["id"]).status

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(work, [app, other_worker]))
    assert outcomes == ["duplicate", "processed"]
    assert sql(app, "select count(*), sum(amount) from credit_entries") == [(1, 3000)]
    assert sql(
        app, "select status, attempts from webhook_events where id = :id", id=invoice_paid["id"]
    ) == [("processed", 1)]
