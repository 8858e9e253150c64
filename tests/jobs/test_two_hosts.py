"""Two hosts, one truth: two app instances as two hosts on one PostgreSQL and one Redis.

Each host is a gunicorn server on its own port plus a Celery worker with its scheduler (beat) on
the same broker, as README "Deploying" runs them. Against the pair:

- rate limits are shared: a log-in limit spent half on each host is spent;
- caches see each other's writes: copy published on host A shows on host B's /pricing within
  PRICING_CACHE_SECONDS (page_cache.py asks the database for the copy version; member_cache.py
  listens to PostgreSQL's NOTIFY: both caches are per process and invalidated through the
  database, so no Redis is needed for them);
- a webhook delivered to both hosts at once is processed once: one ledger row, one grant;
- a scheduled job runs once: both beats tick for a slot, one `job_runs` row, one run.

PostgreSQL only (skipped on SQLite); needs Redis at REDIS_TEST_URL (default redis://127.0.0.1:6379).
Redis is shared: this test uses a db number picked at random, and keys of its own prefix and
queue name, deletes only those, and never flushes.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis
import requests

from tests.billing_helpers import signature
from tests.conftest import create_user, sql
from tests.reliability.conftest import in_threads
from tests.reliability.gunicorn import ROOT, serve
from tests.reliability.test_one_live_subscription import logged_in, pay, start, token
from tests.test_admin import EDITOR, default_document, form_fields

pytestmark = pytest.mark.postgres

CELERY = str(Path(sys.executable).parent / "celery")
REDIS_BASE = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379")
PASSWORD = "correct horse battery"


@pytest.fixture
def redis_db() -> Iterator[tuple[str, str]]:
    """A Redis URL on a db picked at random, and a name of this run for keys and the queue."""
    number = random.randint(2, 15)
    url = f"{REDIS_BASE}/{number}"
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"needs Redis at {REDIS_BASE}: {exc}")
    name = f"twohosts-{uuid.uuid4().hex[:10]}"
    yield url, name
    for key in client.scan_iter(f"*{name}*"):
        client.delete(key)
    client.close()


@pytest.fixture
def hosts(app, database_url, redis_db, tmp_path) -> Iterator[list[str]]:
    """Two hosts: gunicorn and a worker with beat each, sharing the database and Redis."""
    url, name = redis_db
    settings = {
        "DATABASE_URL": database_url,
        "WEB_CONCURRENCY": "2",
        "REDIS_URL": url,
        "RATELIMIT_KEY_PREFIX": name,
        "JOBS_BROKER_URL": url,
        "JOBS_QUEUE": name,
        "LOGIN_ACCOUNT_IP_RATE_LIMIT": "4 per minute",
        "SANDBOX_WEBHOOK_DELIVERY": "thread",
        "CHECKOUT_CONSENT_COLLECTION": "false",
        "CHECKOUT_AUTOMATIC_TAX": "false",
        "CHECKOUT_TAX_ID_COLLECTION": "false",
        "CHECKOUT_BILLING_ADDRESS_COLLECTION": "false",
        "CHECKOUT_FREE_TRIALS": "false",
    }
    with ExitStack() as stack:
        urls = []
        for host in ("a", "b"):
            urls.append(stack.enter_context(serve(settings, tmp_path / f"gunicorn-{host}.log")))
            stack.enter_context(worker(settings, host, tmp_path))
        yield urls


class worker:
    """`celery -A webapp.jobs.worker worker --beat` (README "Deploying") for one host."""

    def __init__(self, settings: dict[str, str], host: str, tmp_path: Path) -> None:
        self.log_path = tmp_path / f"worker-{host}.log"
        self.argv = [
            CELERY,
            "-A",
            "webapp.jobs.worker",
            "worker",
            "--beat",
            f"--schedule={tmp_path / f'beat-{host}'}",
            f"--hostname={host}@%h",
            "--concurrency=1",
            "--loglevel=INFO",
        ]
        self.env = {**os.environ, **settings}

    def __enter__(self) -> Path:
        self.log = self.log_path.open("w")
        self.process = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self.log_path

    def __exit__(self, *exc: object) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.log.close()


def wrong_login(base: str, email: str) -> int:
    session = requests.Session()
    data = {"email": email, "password": "not the password at all"}
    data["csrf_token"] = token(session, f"{base}/login")
    return session.post(f"{base}/login", data=data, timeout=30).status_code


def test_two_hosts_one_truth(app, hosts, tmp_path):
    """One pair of hosts for every check: starting four processes is most of the cost."""
    a_webhook_delivered_to_both_hosts_is_processed_once(app, hosts)
    copy_published_on_one_host_shows_on_the_other(app, hosts)
    a_log_in_limit_spent_on_both_hosts_is_spent(app, hosts)
    a_scheduled_job_runs_once_though_both_beats_tick(app, tmp_path)


def a_log_in_limit_spent_on_both_hosts_is_spent(app, hosts):
    create_user(app, email="lin@example.com")
    a, b = hosts
    # Four allowed a minute per account and address: two on each host spend them all.
    refused = [wrong_login(host, "lin@example.com") for host in (a, b, a, b)]
    assert refused == [400] * 4  # a wrong password, answered as such
    assert wrong_login(b, "lin@example.com") == 429
    assert wrong_login(a, "lin@example.com") == 429


def copy_published_on_one_host_shows_on_the_other(app, hosts):
    a, b = hosts
    create_user(app, email="mia@example.com", role="marketing")
    assert "Published on host A" not in requests.get(f"{b}/pricing", timeout=30).text
    editor = requests.Session()
    login = {"email": "mia@example.com", "password": PASSWORD}
    editor.post(f"{a}/login", data={**login, "csrf_token": token(editor, f"{a}/login")}, timeout=30)
    document = default_document(app)
    document["page"]["headline"] = "Published on host A"
    data = {**form_fields(document), "publish": "1", "csrf_token": token(editor, f"{a}{EDITOR}")}
    published = editor.post(f"{a}{EDITOR}", data=data, allow_redirects=False, timeout=30)
    assert published.status_code == 303, published.text[:300]
    deadline = time.monotonic() + 1.5  # PRICING_CACHE_SECONDS (1 s) is the promise
    while "Published on host A" not in requests.get(f"{b}/pricing", timeout=30).text:
        assert time.monotonic() < deadline, "host B still serves the old copy"
        time.sleep(0.1)


def wait_for(check, timeout: float = 60.0, message: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(message or "timed out")


def a_webhook_delivered_to_both_hosts_is_processed_once(app, hosts):
    a, b = hosts
    user_id = create_user(app)
    member = logged_in(a)
    assert pay(member, start(member, a, "professional", "monthly")) == 303
    wait_for(lambda: sql(app, "select id from credit_entries"), message="no first grant")
    # The renewal's events reach no endpoint (the sandbox's "lost" fault), so its invoice.paid
    # is ours to deliver: to both hosts at the same moment.
    faults = requests.post(f"{a}/sandbox/control/faults", json={"webhooks": {"mode": "lost"}})
    assert faults.status_code == 200, faults.text
    assert requests.post(f"{a}/sandbox/control/advance", json={"days": 31}).status_code == 200
    rows = sql(app, "select data from sandbox_events where type = 'invoice.paid' order by seq")
    renewal = json.loads(rows[-1][0])
    assert renewal["data"]["object"]["billing_reason"] == "subscription_cycle"
    payload = json.dumps(renewal).encode()

    def deliver(base: str) -> int:
        headers = {"Stripe-Signature": signature(payload), "Content-Type": "application/json"}
        return requests.post(f"{base}/webhooks/stripe", data=payload, headers=headers).status_code

    assert in_threads([lambda: deliver(a), lambda: deliver(b)] * 2, workers=4) == [200] * 4

    # Answered at once; the hosts' workers apply it.
    def ledger() -> list:
        return sql(app, "select status from webhook_events where id = :id", id=renewal["id"])

    wait_for(lambda: ledger() == [("processed",)], message="the renewal was never processed")
    time.sleep(1)  # a second worker's job for the same event has had its chance
    invoice_id = renewal["data"]["object"]["id"]
    grants = sql(
        app,
        "select count(*) from credit_entries where invoice_id = :id and amount > 0",
        id=invoice_id,
    )
    assert grants == [(1,)]
    [(balance,)] = sql(app, "select sum(amount) from credit_entries where user_id = :u", u=user_id)
    [(first,)] = sql(app, "select min(amount) from credit_entries where user_id = :u", u=user_id)
    assert balance == 2 * first


SENT = re.compile(r"Scheduler: Sending due task mail\.deliver_due")


def a_scheduled_job_runs_once_though_both_beats_tick(app, tmp_path):
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    # Both beats send the mail job at a 30-second boundary; wait for a slot both ticked for.
    wait_for(
        lambda: all(len(SENT.findall(log.read_text())) >= 1 for log in logs),
        timeout=90,
        message="the beats never ticked:\n" + "\n".join(log.read_text()[-2000:] for log in logs),
    )
    wait_for(lambda: sql(app, "select 1 from job_runs where finished_at is not null"))
    time.sleep(2)  # let the other host's tick be consumed too
    runs = sql(app, "select job, slot, count(*) from job_runs group by job, slot")
    assert runs and all(count == 1 for _job, _slot, count in runs)
    ticks = sum(len(SENT.findall(log.read_text())) for log in logs)
    mail_slots = [slot for job, slot, _count in runs if job == "mail.deliver_due"]
    assert ticks >= 2 * len(mail_slots) - 1  # every slot ticked on both hosts (bar the last)
    claimed = sum(log.read_text().count("already claimed") for log in logs)
    assert claimed >= 1  # a beat's tick that found the slot taken ran nothing
