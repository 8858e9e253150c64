"""One live subscription per user, under gunicorn's worker processes on PostgreSQL.

Four browser tabs of one user start checkouts at the same moment, each for another plan, and
then every tab pays whatever checkout page it was sent to. Before checkout starts were
serialised per user, this made four live, charged subscriptions.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import create_user, sql
from tests.reliability.conftest import in_threads
from tests.reliability.gunicorn import serve

pytestmark = pytest.mark.postgres

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
PLANS = [
    ("starter", "monthly"),
    ("professional", "monthly"),
    ("business", "yearly"),
    ("agency", "monthly"),
]


@pytest.fixture
def gunicorn(app, database_url, tmp_path) -> Iterator[str]:
    """The site under gunicorn with four sync workers, on the test's PostgreSQL database."""
    settings = {
        "DATABASE_URL": database_url,
        "WEB_CONCURRENCY": "4",
        "RATELIMIT_ENABLED": "false",
        "SANDBOX_WEBHOOK_DELIVERY": "thread",
        # The server runs as development, whose Checkout asks for the terms box, a billing
        # address and offers a card-less trial; these tabs pay with a card alone, as in test.
        "CHECKOUT_CONSENT_COLLECTION": "false",
        "CHECKOUT_AUTOMATIC_TAX": "false",
        "CHECKOUT_TAX_ID_COLLECTION": "false",
        "CHECKOUT_BILLING_ADDRESS_COLLECTION": "false",
        "CHECKOUT_FREE_TRIALS": "false",
    }
    with serve(settings, tmp_path / "gunicorn.log") as url:
        yield url


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
