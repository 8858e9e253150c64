"""Sign-up must not tell who has an account, nor let a flood of password hashing slow the site."""

from __future__ import annotations

import statistics
import time

import pytest

from tests.conftest import AuthActions, create_user, csrf_token, sql
from webapp.config import Config

GROUP = "sign-up probes and floods"


def probe(app, email: str, address: str = "198.51.100.7", **extra: str):
    """A prober's sign-up from a fresh client; returns the response and its duration."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    auth = AuthActions(app, client)
    token = csrf_token(client, "/signup")
    data = {"email": email, "password": "prober's password", "csrf_token": token, **extra}
    started = time.perf_counter()
    response = client.post("/signup", data=data)
    return response, time.perf_counter() - started, auth


def shape(response) -> dict:
    """Everything a prober sees but the cookie values (signed, so never equal)."""
    cookies = sorted(
        (c.split("=", 1)[0], sorted(p.strip() for p in c.split(";")[1:]))
        for c in response.headers.getlist("Set-Cookie")
    )
    return {
        "status": response.status_code,
        "location": response.headers.get("Location"),
        "headers": sorted(name for name, _ in response.headers if name != "Set-Cookie"),
        "cookies": cookies,
        "body": response.get_data(),
    }


# The timing half rests on both answers hashing a password with the deployed KDF, whose cost
# dwarfs the rest; the suite's cheap hash (TestConfig) would leave only the database work to
# compare, which differs between the two on purpose.
DEPLOYED_HASH = {"PASSWORD_HASH_METHOD": Config().PASSWORD_HASH_METHOD}


@pytest.mark.parametrize("config_overrides", [DEPLOYED_HASH])
@pytest.mark.parametrize("plan", [{}, {"plan": "business", "cycle": "yearly"}])
def test_a_taken_address_and_a_new_one_get_the_same_answer(app, figures, plan):
    create_user(app, email="ada@example.com")
    taken, fresh = [], []
    for n in range(3):
        taken.append(probe(app, "ADA@example.com", **plan))
        fresh.append(probe(app, f"new{n}@example.com", **plan))
    for (a, _, _), (b, _, _) in zip(taken, fresh, strict=True):
        assert figures.attack(GROUP, refused=shape(a) == shape(b))
        assert b"exists" not in a.get_data()
    assert shape(taken[0][0])["location"] == "/signup/done"
    # Both hash a password: the taken address is not answered measurably sooner.
    ratio = statistics.median(t for _, t, _ in taken) / statistics.median(t for _, t, _ in fresh)
    assert figures.attack(GROUP, refused=ratio > 0.4), ratio
    # The prober did not get into Ada's account, and it still has her password.
    prober = taken[0][2]
    assert prober.client.get("/account").status_code == 302
    assert AuthActions(app, app.test_client()).login().status_code == 303
    assert sql(app, "select count(*) from users where email = 'ada@example.com'") == [(1,)]


def test_the_landing_page_continues_a_new_account_and_sends_others_to_log_in(app):
    create_user(app, email="ada@example.com")
    response, _, prober = probe(app, "ada@example.com", plan="business", cycle="yearly")
    page = prober.client.get(response.headers["Location"])
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'data-testid="signup-neutral"' in html
    assert "/login?plan=business&amp;cycle=yearly" in html

    response, _, newcomer = probe(app, "grace@example.com", plan="business", cycle="yearly")
    html = newcomer.client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Your account is ready" in html and "Continue to payment" in html
    # No plan: straight on to the account page.
    response, _, plain = probe(app, "linus@example.com")
    assert plain.client.get(response.headers["Location"]).headers["Location"] == "/account"


@pytest.mark.parametrize(
    "config_overrides",
    [
        {
            "RATELIMIT_ENABLED": True,
            "SIGNUP_RATE_LIMIT": "2 per minute",
            "SIGNUP_GLOBAL_RATE_LIMIT": "3 per minute",
        }
    ],
)
def test_sign_ups_are_limited_per_address_and_for_the_whole_site(app, figures):
    create_user(app, email="ada@example.com")
    burst = [probe(app, f"flood{n}@example.com", "203.0.113.1")[0] for n in range(4)]
    assert [r.status_code for r in burst[:2]] == [303, 303]
    for response in burst[2:]:
        assert figures.attack(GROUP, refused=response.status_code == 429)
    # A taken address spends the same budget and is refused the same way.
    taken = probe(app, "ada@example.com", "203.0.113.1")[0]
    assert figures.attack(GROUP, refused=taken.status_code == 429)
    assert taken.get_data() == burst[-1].get_data()

    # Another address still gets in, until the site's budget is spent by many addresses.
    assert probe(app, "second@example.com", "203.0.113.2")[0].status_code == 303
    for n in range(3):
        refused = probe(app, f"spread{n}@example.com", f"203.0.113.{10 + n}")[0]
        assert figures.attack(GROUP, refused=refused.status_code == 429)
    assert sql(app, "select count(*) from users") == [(4,)]


def test_the_owner_is_told_of_the_attempt_and_can_dismiss_it(app, figures):
    create_user(app, email="ada@example.com")
    assert sql(app, "select signup_attempted_at from users") == [(None,)]
    probe(app, "Ada@Example.com")

    owner = AuthActions(app, app.test_client())
    owner.login()
    html = owner.client.get("/account").get_data(as_text=True)
    assert 'data-testid="signup-attempt-notice"' in html
    assert "Someone tried to create an account with your email address on" in html

    # Dismissing is a POST with the CSRF token; without one nothing changes.
    assert owner.client.post("/account/signup-notice").status_code == 400
    token = csrf_token(owner.client, "/account")
    response = owner.client.post("/account/signup-notice", data={"csrf_token": token})
    assert response.status_code == 303
    assert 'data-testid="signup-attempt-notice"' not in owner.client.get("/account").get_data(
        as_text=True
    )
    assert sql(app, "select signup_attempted_at from users") == [(None,)]
