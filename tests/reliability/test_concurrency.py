"""Concurrency on PostgreSQL with real threads: deliveries, checkouts and sign-ups that race.

Each thread has its own test client against the one WSGI app, so requests really overlap in the
app and in the database (a connection pool, row locks, unique indexes), as under gunicorn.
"""

from __future__ import annotations

import random

import pytest

from tests.billing_helpers import post_event, sandbox_events, start_checkout, subscribe
from tests.conftest import AuthActions, create_user, csrf_token, sql
from tests.reliability.conftest import in_threads, json_of
from tests.test_webhooks import forget_effects, state
from webapp.catalog import get_catalog

pytestmark = pytest.mark.postgres

# The events our handlers act on; the others are acknowledged and ledgered as "ignored".
FULFILLING = ("checkout.session.completed", "invoice.paid")
PLANS = [("starter", "monthly"), ("professional", "monthly"), ("business", "yearly")]


@pytest.fixture
def config_overrides():
    # The sandbox records the events; each test delivers them itself, from many threads.
    return {"SANDBOX_DELIVER_TO_SELF": False}


def logged_in_client(app, email: str):
    client = app.test_client()
    AuthActions(app, client).login(email)
    return client


def subscribers(app, count: int) -> dict[int, str]:
    """`count` users who each paid for a plan through the sandbox; {user id: plan id}."""
    plans = {}
    for n in range(count):
        email = f"user{n}@example.com"
        user_id = create_user(app, email=email)
        plan, cycle = PLANS[n % len(PLANS)]
        subscribe(logged_in_client(app, email), plan, cycle)
        plans[user_id] = plan
    return plans


def deliver_concurrently(app, events: list[dict]) -> list:
    return in_threads([lambda e=e: post_event(app.test_client(), e) for e in events])


@pytest.mark.parametrize("event_type", FULFILLING)
def test_twenty_concurrent_deliveries_of_one_event_have_one_effect(app, figures, event_type):
    subscribers(app, 1)
    [event] = sandbox_events(app, (event_type,))
    responses = deliver_concurrently(app, [event] * 20)
    figures.add("events delivered", 20)
    figures.add("duplicates", 19)
    figures.count_5xx([r.status_code for r in responses])

    assert [r.status_code for r in responses] == [200] * 20
    messages = sorted(json_of(r)["message"] for r in responses)
    assert messages == ["duplicate"] * 19 + ["processed"]
    [(grants,)] = sql(app, "select count(*) from credit_entries")
    [(subscriptions,)] = sql(app, "select count(*) from subscriptions")
    figures.add("effects doubled", max(0, grants - 1) + max(0, subscriptions - 1))
    assert (grants, subscriptions) == (1, 1)
    assert sql(app, "select status, attempts from webhook_events") == [("processed", 1)]


def test_two_hundred_events_shuffled_with_duplicates_equal_sequential(app, figures):
    plans = subscribers(app, 20)
    events = [e for e in sandbox_events(app) if not e["type"].startswith(("product.", "price."))]
    assert len(events) >= 200, len(events)
    rng = random.Random(7)  # reproducible
    duplicates = rng.sample(events, k=int(len(events) * 0.3))
    shuffled = events + duplicates
    rng.shuffle(shuffled)
    responses = deliver_concurrently(app, shuffled)
    figures.add("events delivered", len(shuffled))
    figures.add("duplicates", len(duplicates))
    figures.add("reordered", sum(1 for a, b in zip(events, shuffled, strict=False) if a is not b))
    figures.count_5xx([r.status_code for r in responses])
    assert {r.status_code for r in responses} == {200}
    concurrent = state(app)

    forget_effects(app)
    for event in events:
        assert post_event(app.test_client(), event).status_code == 200
    sequential = state(app)

    with app.app_context():
        catalog_credits = {u: get_catalog().plan(p).monthly_credits for u, p in plans.items()}
    granted = dict(sql(app, "select user_id, sum(amount) from credit_entries group by user_id"))
    doubled = sum(max(0, granted.get(u, 0) - c) for u, c in catalog_credits.items())
    lost = sum(max(0, c - granted.get(u, 0)) for u, c in catalog_credits.items())
    lost += len(sequential["subscriptions"]) - len(concurrent["subscriptions"])
    doubled += len(concurrent["credits"]) - len(sequential["credits"])
    figures.add("effects doubled", max(0, doubled))
    figures.add("rows lost", max(0, lost))
    assert concurrent == sequential
    assert granted == catalog_credits
    assert len(concurrent["subscriptions"]) == 20
    done = "select count(*) from webhook_events where status in ('processed', 'ignored')"
    assert sql(app, done) == [(len(events),)]


def test_two_concurrent_checkouts_make_one_customer_and_one_open_session(app, figures):
    create_user(app)
    clients = [logged_in_client(app, "ada@example.com") for _ in range(2)]
    responses = in_threads([lambda c=c: start_checkout(c) for c in clients])
    assert [r.status_code for r in responses] == [303, 303]
    assert responses[0].headers["Location"] == responses[1].headers["Location"]
    [(customer_id,)] = sql(app, "select stripe_customer_id from users")
    assert customer_id
    customers = sql(app, "select count(*) from sandbox_objects where object = 'customer'")
    sessions = sql(app, "select count(*) from checkout_sessions where status = 'open'")
    figures.add("effects doubled", customers[0][0] - 1 + sessions[0][0] - 1)
    assert (customers, sessions) == ([(1,)], [(1,)])


def test_two_concurrent_signups_with_one_email_make_one_account(app, figures):
    clients = [app.test_client() for _ in range(2)]
    tokens = [csrf_token(c, "/signup") for c in clients]

    def signup(client, token, email):
        data = {"email": email, "password": "correct horse battery", "csrf_token": token}
        return client.post("/signup", data=data)

    emails = ["ada@example.com", "ADA@example.com"]
    responses = in_threads([lambda i=i: signup(clients[i], tokens[i], emails[i]) for i in (0, 1)])
    statuses = sorted(r.status_code for r in responses)
    figures.count_5xx(statuses)
    [(accounts,)] = sql(app, "select count(*) from users")
    figures.add("effects doubled", accounts - 1)
    assert statuses == [303, 303]  # the loser is answered as any taken address is
    assert accounts == 1
    # Only the winner is logged in.
    assert sorted(c.get("/account").status_code for c in clients) == [200, 302]
