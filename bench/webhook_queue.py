"""The webhook-queue rows of bench/run.py: ingestion of events we process, and draining them.

The site runs with a Redis broker (a random db and a queue name of this run's own; nothing is
flushed) and the sandbox answering every Stripe call 200 ms late (SANDBOX_LATENCY_MS). A member
subscribes through the sandbox's hosted checkout, then wrk delivers distinct signed
`invoice.paid` and `customer.subscription.updated` events about that invoice and subscription
while no queue worker runs: the endpoint only verifies, ledgers and queues. Then the backlog
drains: first one Celery worker, then two (README's command), each rate read from the ledger;
then until nothing is left, and the ledger must show every event processed once and the
invoice's credits granted once.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CELERY = ROOT / ".venv" / "bin" / "celery"
LATENCY_MS = 200
EMAIL_PREFIX, PASSWORD = "bench-webhooks-", "bench-webhooks-password-not-secret"
INGEST_SECONDS = 3  # every event delivered must then be processed: keep the backlog drainable
WORKER_THREADS = 8  # each worker's concurrency: the jobs mostly wait on Stripe
# The drain rates need this many events (two warm-ups and two samples of a few seconds at the
# rates a sandbox 200 ms late allows); ingestion tops the backlog up to it if wrk fell short.
MIN_BACKLOG = 400
BUSY_BACKLOG = 2 * 2 * WORKER_THREADS  # both workers' threads busy, and as many waiting
DRAIN_SAMPLE_SECONDS = 10
DRAIN_TIMEOUT_SECONDS = 600
DONE = ("processed", "ignored")


def queue_env() -> dict[str, str]:
    """The site's and the workers' settings: a broker of this run's own, Stripe made slow."""
    return {
        "JOBS_BROKER_URL": f"redis://127.0.0.1:6379/{random.randint(2, 15)}",
        "JOBS_QUEUE": f"bench-{os.getpid()}-{uuid.uuid4().hex[:8]}",
        "SANDBOX_LATENCY_MS": str(LATENCY_MS),
    }


class Workers:
    """`celery -A webapp.jobs.worker worker` processes, started and stopped by the bench."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env, self.log_dir = env, log_dir
        self.processes: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def start(self, count: int) -> None:
        for _ in range(count):
            # A log of each process's own: a worker is ready when its log says so, and a log
            # an earlier process wrote must not answer for a new one.
            n = len(self.logs)
            log = self.log_dir / f"celery{n}.log"
            command = [str(CELERY), "-A", "webapp.jobs.worker", "worker", "--pool=threads"]
            command += [f"--concurrency={WORKER_THREADS}", f"--hostname=bench{n}-{os.getpid()}@%h"]
            command += ["--without-gossip", "--without-mingle", "--loglevel=INFO"]
            with log.open("wb") as out:
                process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=out, stderr=out)
            self.processes.append(process)
            self.logs.append(log)

    def wait_ready(self, timeout: float = 120) -> None:
        """Until every running worker says it is ready (importing the app is not speed)."""
        deadline = time.monotonic() + timeout
        for log in self.logs[-len(self.processes) :]:
            while " ready." not in log.read_text(errors="replace"):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{log.name}: worker not ready after {timeout:.0f} s")
                time.sleep(0.2)

    def stop(self) -> None:
        """Warm shutdown: running jobs finish; the rest stay queued (acks_late)."""
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        self.processes.clear()


SUBSCRIBERS = 8  # a renewal day touches many customers, not one row over and over

# Run by `subscribe` in a process of its own: the site's app with checkout's extras off (terms,
# tax, trials: a card pays at once) and no latency; each member signs up (as `flask users
# create` does) and pays on the sandbox's hosted page as a browser would (the test client).
_SUBSCRIBE = """
import re, sys
from urllib.parse import urlsplit
from webapp import create_app
from webapp.extensions import db
from webapp.models import User
from webapp.models.base import utcnow
app = create_app()
prefix, password, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
for n in range(count):
    email = f"{prefix}{n}@example.com"
    with app.app_context():
        user = User(email=email, role="user", email_verified_at=utcnow())
        user.set_password(password)
        db.session.add(user)
        db.session.commit()
    client = app.test_client()
    def token(path):
        page = client.get(path)
        found = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page.text)
        return found.group(1)
    form = {"email": email, "password": password, "csrf_token": token("/login")}
    login = client.post("/login", data=form)
    assert login.status_code in (302, 303), login.status_code
    data = {"plan": "professional", "cycle": "monthly", "csrf_token": token("/pricing")}
    started = client.post("/checkout", data=data)
    path = urlsplit(started.headers["Location"]).path
    assert started.status_code == 303 and "/login" not in path, (started.status_code, path)
    card = {"card_number": "4242 4242 4242 4242", "expiry": "12 / 34", "cvc": "123"}
    paid = client.post(path, data={"csrf_token": token(path), **card})
    assert paid.status_code == 303, (paid.status_code, paid.text[:2000])
"""


def subscribe(env: dict[str, str]) -> None:
    """SUBSCRIBERS members pay for Professional monthly on the sandbox's hosted checkout."""
    extras = ("CONSENT_COLLECTION", "AUTOMATIC_TAX", "TAX_ID_COLLECTION", "FREE_TRIALS")
    overrides = {f"CHECKOUT_{name}": "false" for name in extras}
    overrides |= {"CHECKOUT_BILLING_ADDRESS_COLLECTION": "false", "SANDBOX_LATENCY_MS": "0"}
    python = str(ROOT / ".venv" / "bin" / "python")
    subprocess.run(
        [python, "-c", _SUBSCRIBE, EMAIL_PREFIX, PASSWORD, str(SUBSCRIBERS)],
        cwd=ROOT,
        env={**env, **overrides, "PYTHONPATH": str(ROOT)},
        check=True,
        timeout=600,
    )


def stripe_objects(query: Callable[[str], list[tuple]]) -> list[tuple[str, str]]:
    """Each webhook member's subscription and its paid invoice, from the sandbox's own rows."""
    pairs = []
    for (customer,) in query(
        f"SELECT stripe_customer_id FROM users WHERE email LIKE '{EMAIL_PREFIX}%'"
    ):
        [(subscription,)] = query(
            "SELECT id FROM sandbox_objects "
            f"WHERE object = 'subscription' AND customer = '{customer}'"
        )
        [(invoice,)] = query(
            f"SELECT id FROM sandbox_objects WHERE object = 'invoice' AND customer = '{customer}'"
        )
        pairs.append((subscription, invoice))
    if len(pairs) != SUBSCRIBERS:
        raise RuntimeError(f"{len(pairs)} webhook members subscribed, not {SUBSCRIBERS}")
    return pairs


def event_writer(
    objects: list[tuple[str, str]], sign: Callable[[str, int], str]
) -> Callable[[Path, str, int], list[str]]:
    """Like run.signed_events, but each event is one we process, about objects that exist."""

    def write(path: Path, prefix: str, count: int) -> list[str]:
        now = int(time.time())
        ids = []
        with path.open("w") as out:
            for n in range(count):
                event_id = f"evt_bench_{prefix}_{n:07d}"
                subscription, invoice = objects[(n // 2) % len(objects)]
                kind, obj = (
                    ("invoice.paid", {"id": invoice, "object": "invoice"})
                    if n % 2 == 0
                    else (
                        "customer.subscription.updated",
                        {"id": subscription, "object": "subscription"},
                    )
                )
                body = json.dumps(
                    {
                        "id": event_id,
                        "object": "event",
                        "type": kind,
                        "created": now,
                        "data": {"object": obj},
                        "livemode": False,
                        "api_version": "2026-10-28.endive",
                    },
                    separators=(",", ":"),
                )
                out.write(f"{sign(body, now)}\t{body}\n")
                ids.append(event_id)
        return ids

    return write


@dataclass
class Drain:
    backlog: int
    one_worker: float | None  # events per second; None when the backlog ran out too soon
    two_workers: float | None
    seconds_to_empty: float


def _waiting(query: Callable[[str], list[tuple]], prefix: str) -> int:
    return query(
        "SELECT count(*) FROM webhook_events WHERE id LIKE "
        f"'evt_bench_{prefix}%' AND status NOT IN ('processed', 'ignored')"
    )[0][0]


def _warm_up(query: Callable[[str], list[tuple]], prefix: str, events: int) -> None:
    """Until `events` more are processed: a worker's first jobs open its connections."""
    target, deadline = _waiting(query, prefix) - events, time.monotonic() + 120
    while _waiting(query, prefix) > max(target, 0) and time.monotonic() < deadline:
        time.sleep(0.2)


def _rate(query: Callable[[str], list[tuple]], prefix: str, seconds: float) -> float | None:
    """Events processed per second over `seconds`, counted only while every worker thread still
    had an event to take (a near-empty queue measures the queue, not the workers); None when
    that lasted under two seconds."""
    start, waiting = time.monotonic(), _waiting(query, prefix)
    last_time, last_waiting = start, waiting
    while time.monotonic() - start < seconds:
        time.sleep(0.5)
        now, left = time.monotonic(), _waiting(query, prefix)
        if left < BUSY_BACKLOG:
            break
        last_time, last_waiting = now, left
    if last_time - start < 2:
        return None
    return (waiting - last_waiting) / (last_time - start)


def drain(workers: Workers, query: Callable[[str], list[tuple]], prefix: str) -> Drain:
    """One worker, then two, on the same backlog, each after a warm-up; then until it is empty."""
    backlog = _waiting(query, prefix)
    started = time.monotonic()
    workers.start(1)
    workers.wait_ready()
    _warm_up(query, prefix, WORKER_THREADS)
    one = _rate(query, prefix, DRAIN_SAMPLE_SECONDS)
    workers.start(1)
    workers.wait_ready()
    _warm_up(query, prefix, 2 * WORKER_THREADS)
    two = _rate(query, prefix, DRAIN_SAMPLE_SECONDS)
    deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
    while _waiting(query, prefix) and time.monotonic() < deadline:
        time.sleep(1)
    return Drain(backlog, one, two, time.monotonic() - started)


def ledger_problems(
    query: Callable[[str], list[tuple]], prefix: str, invoices: list[str]
) -> list[str]:
    """What the ledger says went wrong: an event not processed, or a grant not made once."""
    problems = [
        f"{count} event(s) {status}"
        for status, count in query(
            "SELECT status, count(*) FROM webhook_events WHERE id LIKE "
            f"'evt_bench_{prefix}%' GROUP BY status"
        )
        if status not in DONE
    ]
    for invoice in invoices:
        grants = query(f"SELECT count(*) FROM credit_entries WHERE grant_key LIKE '%{invoice}%'")
        if grants != [(1,)]:
            problems.append(f"{grants[0][0]} credit grants for {invoice}, not 1")
    return problems
