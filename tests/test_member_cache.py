"""The member cache: logged-in pages served from memory, and never older than the database says.

Two app instances on one database stand in for two workers: one caches, the other writes, as a
webhook or an admin would on another worker or host.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from tests.conftest import CSRF_RE, AuthActions, create_user, csrf_token
from webapp.extensions import db
from webapp.member_cache import FeedUnavailable, MemberCache, SqliteFeed
from webapp.models import User
from webapp.models.base import utcnow
from webapp.models.billing import CreditEntry, Subscription


@pytest.fixture
def member(app: Flask, client: FlaskClient, auth: AuthActions) -> int:
    user_id = create_user(app)
    auth.login()
    return user_id


def eventually(page: Callable[[], str], expected: str, seconds: float = 3.0) -> str:
    """The page once it shows `expected`. PostgreSQL's notifications arrive asynchronously,
    within a millisecond of the commit; the deadline only keeps a slow machine from failing."""
    deadline = time.monotonic() + seconds
    while True:
        html = page()
        if expected in html or time.monotonic() > deadline:
            return html
        time.sleep(0.02)


def account(client: FlaskClient) -> str:
    response = client.get("/account")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def grant(app: Flask, user_id: int, amount: int, key: str) -> None:
    with app.app_context():
        db.session.add(
            CreditEntry(
                user_id=user_id,
                amount=amount,
                type="purchase",
                kind="adjustment",
                grant_key=key,
                description="Goodwill",
            )
        )
        db.session.commit()


def add_subscription(app: Flask, user_id: int, plan: str = "business") -> None:
    now = utcnow()
    with app.app_context():
        db.session.add(
            Subscription(
                user_id=user_id,
                stripe_subscription_id=f"sub_{user_id}_{plan}",
                stripe_customer_id=f"cus_{user_id}",
                stripe_price_id=f"price_{plan}_monthly",
                plan_id=plan,
                cycle="monthly",
                status="active",
                current_period_start=now,
                current_period_end=now + timedelta(days=30),
            )
        )
        db.session.commit()


def test_repeat_views_of_the_account_page_are_served_from_the_cache(app, client, member):
    first = account(client)
    loads = []
    cache: MemberCache = app.extensions["member_cache"]
    with app.test_request_context():
        cache.get(member, "probe", lambda: loads.append(1) or "loaded")
        cache.get(member, "probe", lambda: loads.append(1) or "loaded")
    assert loads == [1]  # the second read came from memory
    # The same page but for the CSRF token, which is signed with the time: compare without it.
    assert CSRF_RE.sub("", account(client)) == CSRF_RE.sub("", first)


def test_credits_granted_on_another_worker_show_on_the_next_view(client, member, other_worker):
    assert 'data-testid="credit-balance">0<' in account(client)
    grant(other_worker, member, 2500, "goodwill-1")
    html = eventually(lambda: account(client), 'data-testid="credit-balance">2,500<')
    assert 'data-testid="credit-balance">2,500<' in html
    assert "Goodwill" in html


def test_a_plan_bought_on_another_worker_shows_on_pricing_and_account(client, member, other_worker):
    assert "Current plan" not in client.get("/pricing").get_data(as_text=True)
    assert 'data-testid="no-plan"' in account(client)
    add_subscription(other_worker, member, "business")
    pricing = eventually(lambda: client.get("/pricing").get_data(as_text=True), "Current plan")
    assert 'aria-label="Business is your current plan"' in pricing
    assert 'data-testid="plan-name">Business<' in eventually(
        lambda: account(client), 'data-testid="plan-name">'
    )


def test_a_role_change_on_another_worker_takes_effect_on_the_next_request(
    client, member, other_worker
):
    def editor_page() -> str:
        return str(client.get("/admin/plans").status_code)

    assert editor_page() == "403"
    set_role(other_worker, member, "marketing")
    assert eventually(editor_page, "200") == "200"
    # …and back: a demoted editor loses access just as promptly.
    set_role(other_worker, member, "user")
    assert eventually(editor_page, "403") == "403"


def set_role(app: Flask, user_id: int, role: str) -> None:
    with app.app_context():
        db.session.get(User, user_id).role = role
        db.session.commit()


def test_this_workers_own_writes_show_at_once(app, client, member):
    account(client)
    grant(app, member, 700, "goodwill-own")  # commits through this app: no waiting allowed
    assert 'data-testid="credit-balance">700<' in account(client)


def test_cached_pages_never_mix_members(app, client, member):
    create_user(app, email="grace@example.com")
    other_client = app.test_client()
    AuthActions(app, other_client).login(email="grace@example.com")
    grant(app, member, 100, "ada-only")
    for _ in range(2):  # the second round is served from the cache
        mine, theirs = account(client), account(other_client)
        assert "ada@example.com" in mine and "grace@example.com" not in mine
        assert "grace@example.com" in theirs and "ada@example.com" not in theirs
        assert 'credit-balance">100<' in mine and 'credit-balance">0<' in theirs


def test_a_cached_page_carries_the_visitors_own_csrf_token(app, client, member):
    grant(app, member, 100, "for-a-customer")
    with app.app_context():
        db.session.get(User, member).stripe_customer_id = "cus_for_the_form"
        db.session.commit()
    account(client)  # fills the cache
    other_client = app.test_client()
    AuthActions(app, other_client).login()  # the same member, another browser: another token
    token = csrf_token(other_client, "/account")  # served from the cache
    assert token != csrf_token(client, "/account")
    response = other_client.post("/logout", data={"csrf_token": token})
    assert response.status_code in (302, 303)


def test_flash_messages_are_never_cached(app, client, member):
    account(client)
    token = csrf_token(client, "/account")
    # No billing account yet: the portal button flashes a message and comes back.
    response = client.post("/billing/portal", data={"csrf_token": token}, follow_redirects=True)
    assert "no billing account yet" in response.get_data(as_text=True)
    assert "no billing account yet" not in account(client)


@pytest.mark.parametrize("config_overrides", [{"MEMBER_CACHE_SECONDS": 0}])
def test_member_cache_seconds_zero_turns_the_cache_off(app, client, member, other_worker):
    assert not app.extensions["member_cache"].enabled
    account(client)
    grant(other_worker, member, 300, "uncached")
    assert 'data-testid="credit-balance">300<' in account(client)  # no waiting: no cache


def test_entries_expire_after_member_cache_seconds(tmp_path):
    path = tmp_path / "feed.db"
    path.touch()
    cache = MemberCache(SqliteFeed(str(path)), max_age=0.05)
    answers = iter(["first", "second"])
    assert cache.get(1, "name", lambda: next(answers)) == "first"
    assert cache.get(1, "name", lambda: next(answers)) == "first"
    time.sleep(0.06)
    assert cache.get(1, "name", lambda: next(answers)) == "second"


def test_the_cache_holds_a_bounded_number_of_members(tmp_path):
    path = tmp_path / "feed.db"
    path.touch()
    cache = MemberCache(SqliteFeed(str(path)), max_age=60, max_members=2)
    loads: list[int] = []

    def load(user_id: int) -> Callable[[], int]:
        return lambda: loads.append(user_id) or user_id

    for user_id in (1, 2, 1, 3, 1, 2):  # 2 is the least recently used when 3 arrives
        cache.get(user_id, "row", load(user_id))
    assert loads == [1, 2, 3, 2]


def test_without_a_working_feed_every_read_goes_to_the_database(tmp_path):
    feed = SqliteFeed(str(tmp_path / "missing" / "app.db"))  # cannot be opened
    with pytest.raises(FeedUnavailable):
        feed.changes()
    cache = MemberCache(feed, max_age=60)
    loads: list[int] = []
    for _ in range(3):
        assert cache.get(1, "row", lambda: loads.append(1) or "fresh") == "fresh"
    assert loads == [1, 1, 1]


def test_a_change_committed_while_loading_is_not_served_afterwards(tmp_path):
    import sqlite3

    path = tmp_path / "feed.db"
    writer = sqlite3.connect(path)
    writer.execute("CREATE TABLE t (n INTEGER)")
    writer.commit()
    cache = MemberCache(SqliteFeed(str(path)), max_age=60)

    def load_while_someone_writes() -> str:
        writer.execute("INSERT INTO t VALUES (1)")  # lands after this load read the old state
        writer.commit()
        return "old"

    assert cache.get(1, "row", load_while_someone_writes) == "old"
    assert cache.get(1, "row", lambda: "new") == "new"
    writer.close()


def test_a_lost_feed_connection_never_serves_stale_pages(
    database_url, client, member, other_worker
):
    if not database_url.startswith("postgresql"):
        pytest.skip("the LISTEN connection exists on PostgreSQL only")
    account(client)  # the feed is listening now
    with other_worker.app_context():
        [(ended,)] = db.session.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query = 'LISTEN member_changed'"
            )
        )
        db.session.commit()
    assert ended == 1
    # Changes made while nobody listens must still show: the cache notices the lost connection
    # and answers from the database until it listens again.
    grant(other_worker, member, 900, "while-deaf")
    assert 'data-testid="credit-balance">900<' in eventually(
        lambda: account(client), 'data-testid="credit-balance">900<'
    )
    account(client)  # listening again
    grant(other_worker, member, 100, "after-reconnect")
    assert 'data-testid="credit-balance">1,000<' in eventually(
        lambda: account(client), 'data-testid="credit-balance">1,000<'
    )
