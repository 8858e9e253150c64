"""One live subscription per user, under gunicorn's worker processes on PostgreSQL.

Four browser tabs of one user start checkouts at the same moment, each for another plan, and
then every tab pays whatever checkout page it was sent to. Before checkout starts were
serialised per user, this made four live, charged subscriptions.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import create_user, sql
from tests.reliability.conftest import in_threads

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
PLANS = [
    ("starter", "monthly"),
    ("professional", "monthly"),
    ("business", "yearly"),
    ("agency", "monthly"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def gunicorn(app, database_url, tmp_path) -> Iterator[str]:
    """The site under gunicorn with four sync workers, on the test's PostgreSQL database."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "WEB_CONCURRENCY": "4",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "GUNICORN_ACCESSLOG": "/dev/null",
        "RATELIMIT_ENABLED": "false",
        "SANDBOX_WEBHOOK_DELIVERY": "thread",
    }
    bin_dir = Path(sys.executable).parent
    log = tmp_path.joinpath("gunicorn.log").open("w")
    process = subprocess.Popen(
        [str(bin_dir / "gunicorn"), "--config", str(ROOT / "gunicorn.conf.py"), "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        else:
            pytest.fail("gunicorn did not answer /healthz within 60 s:\n" + log_tail(tmp_path))
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


def log_tail(tmp_path: Path) -> str:
    return "\n".join(tmp_path.joinpath("gunicorn.log").read_text().splitlines()[-30:])


def token(session: requests.Session, url: str) -> str:
    match = CSRF.search(session.get(url, timeout=30).text)
    assert match, f"no CSRF token on {url}"
    return match.group(1)


def logged_in(base: str) -> requests.Session:
    session = requests.Session()
    data = {"email": "ada@example.com", "password": "correct horse battery"}
    response = session.post(
        f"{base}/login", data={**data, "csrf_token": token(session, f"{base}/login")}, timeout=30
    )
    assert response.ok
    return session


def start(session: requests.Session, base: str, plan: str, cycle: str) -> str:
    data = {"plan": plan, "cycle": cycle, "csrf_token": token(session, f"{base}/pricing")}
    response = session.post(f"{base}/checkout", data=data, allow_redirects=False, timeout=60)
    assert response.status_code == 303, response.text[:500]
    return response.headers["Location"]


def pay(session: requests.Session, checkout_url: str) -> int:
    card = {"card_number": "4242 4242 4242 4242", "expiry": "12 / 34", "cvc": "123"}
    page = session.get(checkout_url, timeout=30)
    match = CSRF.search(page.text)
    if not match:
        return page.status_code
    response = session.post(
        checkout_url, data={**card, "csrf_token": match.group(1)}, allow_redirects=False, timeout=60
    )
    return response.status_code


def live_subscriptions(app) -> int:
    statuses = "('active', 'trialing', 'past_due')"
    [(count,)] = sql(
        app,
        "select count(*) from sandbox_objects where object = 'subscription' "
        f"and data::jsonb ->> 'status' in {statuses}",
    )
    return count


@pytest.mark.parametrize("plans", [PLANS, [("professional", "monthly")] * 4], ids=["four", "one"])
def test_four_tabs_checking_out_at_once_end_with_one_live_subscription(app, gunicorn, plans):
    create_user(app)
    tabs = [logged_in(gunicorn) for _ in plans]
    urls = in_threads(
        [lambda t=t, p=p: start(t, gunicorn, *p) for t, p in zip(tabs, plans, strict=True)]
    )
    assert all(urlsplit(url).path.startswith("/sandbox/checkout/") for url in urls)
    statuses = in_threads([lambda t=t, u=u: pay(t, u) for t, u in zip(tabs, urls, strict=True)])
    assert statuses.count(303) >= 1, statuses  # somebody paid
    # Webhooks travel in the background (as from Stripe): wait for them to settle.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rows = sql(app, "select status from subscriptions")
        if rows and live_subscriptions(app) == 1:
            break
        time.sleep(0.3)
    assert live_subscriptions(app) == 1
    live = sql(app, "select count(*) from subscriptions where status = 'active'")
    assert live == [(1,)]
    # Serialised starts leave one payable checkout: nobody was charged twice, so nothing had
    # to be refunded (duplicates.py would have cancelled and refunded a second one).
    [(created,)] = sql(app, "select count(*) from sandbox_objects where object = 'subscription'")
    [(refunded,)] = sql(app, "select count(*) from sandbox_objects where object = 'refund'")
    assert (created, refunded) == (1, 0)
