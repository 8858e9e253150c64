"""Password guessing across workers, addresses and proxies; lock-outs that must not happen.

Two `create_app` instances stand in for two gunicorn workers: each keeps its own limit storage
(webapp/throttle.py), so they share counts only through Redis, as production's workers do.
Every test uses its own Redis key prefix.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from tests.conftest import AuthActions, create_user, make_app
from webapp.extensions import db

GROUP = "login guessing and lock-outs"
REDIS = "redis://127.0.0.1:6379/0"
RIGHT = "correct horse battery"

# Small budgets so the tests stay fast; the same shape as the defaults.
LIMITS = {
    "RATELIMIT_ENABLED": True,
    "LOGIN_ACCOUNT_IP_RATE_LIMIT": "3 per minute",
    "LOGIN_RATE_LIMIT": "20 per minute",
    "LOGIN_ACCOUNT_RATE_LIMIT": "5 per minute",
    "LOGIN_DEVICE_RATE_LIMIT": "3 per minute",
}


def shared_limits(**extra: Any) -> dict[str, Any]:
    prefix = f"test-login-{uuid.uuid4().hex}"
    return {
        **LIMITS,
        "RATELIMIT_STORAGE_URI": REDIS,
        "RATELIMIT_KEY_PREFIX": prefix,
        **extra,
    }


@pytest.fixture
def second_worker(app: Flask, database_url: str) -> Iterator[Flask]:
    """Another app on the same database and settings: a second gunicorn worker."""
    other = make_app(database_url, **{k: v for k, v in app.config.items() if k in OVERRIDES})
    yield other
    with other.app_context():
        db.session.remove()
        db.engine.dispose()


OVERRIDES = (*LIMITS, "RATELIMIT_STORAGE_URI", "RATELIMIT_KEY_PREFIX", "TRUSTED_PROXY_COUNT")


def browser(app: Flask, address: str = "198.51.100.1", **headers: str) -> AuthActions:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    for name, value in headers.items():
        client.environ_base[f"HTTP_{name.upper().replace('-', '_')}"] = value
    return AuthActions(app, client)


def token(app: Flask, email: str, password: str, address: str) -> int:
    client = app.test_client()
    response = client.post(
        "/api/v1/auth/token",
        json={"email": email, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )
    return response.status_code


@pytest.mark.parametrize("config_overrides", [shared_limits()])
def test_the_per_account_ceiling_holds_across_workers_addresses_and_the_api(
    app, second_worker, figures
):
    create_user(app)
    workers = [app, second_worker]
    statuses = []
    # A new address and alternating workers for every guess: only the account ceiling is left.
    for attempt in range(9):
        worker, address = workers[attempt % 2], f"203.0.113.{attempt + 1}"
        if attempt % 3 == 2:
            statuses.append(token(worker, "ada@example.com", "wrong guess!!", address))
        else:
            statuses.append(browser(worker, address).login(password="wrong guess!!").status_code)
    assert statuses[:5] == [400, 400, 401, 400, 400]
    for status in statuses[5:]:
        assert figures.attack(GROUP, refused=status == 429)
    # While the ceiling holds, even the right password from a fresh address waits.
    assert browser(second_worker, "203.0.113.99").login(password=RIGHT).status_code == 429


@pytest.mark.parametrize("config_overrides", [{**LIMITS, "RATELIMIT_STORAGE_URI": "memory://"}])
def test_without_shared_storage_each_worker_counts_alone(app, second_worker):
    """Why production refuses to start without REDIS_URL: the ceiling doubles with 2 workers."""
    create_user(app)
    statuses = [
        browser(worker, f"203.0.113.{n}").login(password="wrong guess!!").status_code
        for n in range(5)
        for worker in (app, second_worker)
    ]
    assert statuses.count(400) == 10


@pytest.mark.parametrize("config_overrides", [shared_limits()])
def test_an_attacker_behind_the_owners_address_does_not_lock_the_owner_out(app, figures):
    create_user(app)
    create_user(app, email="grace@example.com")
    office = "192.0.2.10"  # one NAT address for the owner, a colleague and the attacker
    owner = browser(app, office)
    assert owner.login().status_code == 303  # a browser the owner has used before
    owner.logout()

    attacker = browser(app, office)
    guesses = [attacker.login(password=f"guess number {n}").status_code for n in range(6)]
    assert guesses[:2] == [400] * 2  # the owner's own log-in spent one of this pair's three
    for status in guesses[2:]:
        assert figures.attack(GROUP, refused=status == 429)
    # Guesses from many addresses spend the account's ceiling too.
    for n in range(4):
        browser(app, f"203.0.113.{n}").login(password="wrong guess!!")
    assert figures.attack(GROUP, refused=browser(app, office).login().status_code == 429)

    # The owner's browser spends its own budget: the attacker cannot lock it out.
    assert figures.attack(GROUP, refused=owner.login().status_code == 303)
    # Nor anyone else's account from the same address.
    colleague = browser(app, office).login("grace@example.com")
    assert figures.attack(GROUP, refused=colleague.status_code == 303)


@pytest.mark.parametrize("config_overrides", [shared_limits()])
def test_a_device_cookie_for_another_account_or_forged_buys_nothing(app, figures):
    create_user(app)
    create_user(app, email="mallory@example.com")
    attacker = browser(app, "203.0.113.50")
    assert attacker.login("mallory@example.com").status_code == 303  # a device for Mallory
    attacker.logout()
    # Mallory's own device cookie, then a forged one: Ada's budgets are spent all the same.
    statuses = [attacker.login(password=f"guess {n}!!!!!").status_code for n in range(4)]
    attacker.client.set_cookie("login_device", "forged", path="/login")
    statuses.append(attacker.login(password="one more guess").status_code)
    assert statuses[:3] == [400] * 3
    for status in statuses[3:]:
        assert figures.attack(GROUP, refused=status == 429)


@pytest.mark.parametrize("config_overrides", [shared_limits(TRUSTED_PROXY_COUNT=1)])
def test_behind_one_proxy_the_last_forwarded_hop_is_the_client(app, figures):
    create_user(app)
    proxy = "10.0.0.2"
    # The client 203.0.113.7 forges hops of its own in front of what the proxy appends.
    forged = ["203.0.113.7", "6.6.6.6, 203.0.113.7", "7.7.7.7, 8.8.8.8, 203.0.113.7"]
    statuses = [
        browser(app, proxy, x_forwarded_for=hops).login(password="wrong guess!!").status_code
        for hops in [*forged, *forged]
    ]
    assert statuses[:3] == [400] * 3
    for status in statuses[3:]:
        assert figures.attack(GROUP, refused=status == 429)
    # Another client behind the same proxy is another address with a budget of its own.
    other = browser(app, proxy, x_forwarded_for="203.0.113.8").login(password="wrong guess!!")
    assert other.status_code == 400


@pytest.mark.parametrize("config_overrides", [shared_limits()])
def test_without_trusted_proxies_x_forwarded_for_is_ignored(app, figures):
    create_user(app)
    statuses = [
        browser(app, "203.0.113.7", x_forwarded_for=f"6.6.6.{n}")
        .login(password="wrong guess!!")
        .status_code
        for n in range(5)
    ]
    assert statuses[:3] == [400] * 3
    for status in statuses[3:]:
        assert figures.attack(GROUP, refused=status == 429)


@pytest.mark.parametrize("config_overrides", [shared_limits()])
def test_the_limit_answers_alike_for_known_and_unknown_addresses(app):
    create_user(app)
    known = [browser(app).login(password="wrong guess!!") for _ in range(4)]
    unknown = [browser(app).login("nobody@example.com", "wrong guess!!") for _ in range(4)]
    assert [r.status_code for r in known] == [r.status_code for r in unknown] == [400] * 3 + [429]
    assert known[-1].get_data() == unknown[-1].get_data()
    assert "Retry-After" in known[-1].headers and "Retry-After" in unknown[-1].headers


@pytest.mark.parametrize(
    "config_overrides",
    [
        {
            **LIMITS,
            "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:1/0",
            "API_RATE_LIMIT": "5 per minute",
        }
    ],
)
def test_unreachable_limit_storage_refuses_password_checks_with_503_not_500(app, figures):
    """No counts, no guessing: password checks wait for Redis; other API calls go on."""
    create_user(app)
    page = browser(app).login(password=RIGHT)
    assert figures.attack(GROUP, refused=page.status_code == 503), page.status_code
    assert page.headers["Retry-After"] == "30"
    api = app.test_client().post(
        "/api/v1/auth/token", json={"email": "ada@example.com", "password": RIGHT}
    )
    assert figures.attack(GROUP, refused=api.status_code == 503), api.status_code
    assert api.get_json()["error"]["code"] == "service_unavailable"
    assert app.test_client().get("/api/v1/plans").status_code == 200
