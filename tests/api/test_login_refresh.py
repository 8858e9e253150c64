"""Log-in with refresh tokens: `POST /auth/login`, `/auth/refresh` and `/auth/logout`.

The rules are in webapp/api/refresh_tokens.py; the stateful property test beside this file tries
them in random sequences, and `test_one_token_refreshes_once_under_concurrency` races them.
"""

from __future__ import annotations

import hashlib
import threading
import time

import jwt
import pytest

from tests.api.conftest import PASSWORD, assert_conforms, bearer
from tests.conftest import AuthActions, create_user, sql
from webapp.account.deletion import delete_account
from webapp.auth import account_status, sessions
from webapp.extensions import db
from webapp.models import User

LOGIN = {"email": "ada@example.com", "password": PASSWORD}


def log_in(client, **body):
    response = client.post("/api/v1/auth/login", json={**LOGIN, **body})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["tokens"]


def refresh(client, token):
    return client.post("/api/v1/auth/refresh", json={"refreshToken": token})


def log_out(client, token):
    return client.post("/api/v1/auth/logout", json={"refreshToken": token})


def api_works(client, access_token) -> bool:
    response = client.get("/api/v1/credits/balance", headers=bearer(access_token))
    assert response.status_code in (200, 401), response.get_json()
    return response.status_code == 200


def assert_error(response, path, status, code):
    assert response.status_code == status, response.get_json()
    assert assert_conforms(response, "POST", path)["error"]["code"] == code
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def families(app):
    return sql(app, "select revoked_at is not null, revoked_reason from refresh_token_families")


# --- POST /auth/login -------------------------------------------------------------------------


def test_login_answers_the_user_and_a_token_pair(app, client, user_id):
    response = client.post("/api/v1/auth/login", json=LOGIN)
    assert response.status_code == 200
    body = assert_conforms(response, "POST", "/auth/login")
    assert response.headers["Cache-Control"] == "no-store"
    assert body["success"] is True and body["message"]
    user = body["user"]
    assert user["id"] == str(user_id) and user["email"] == "ada@example.com"
    assert user["name"] is None and user["emailVerified"] is True
    assert user["updatedAt"].endswith("Z")
    tokens = body["tokens"]
    assert tokens["expiresIn"] == 900 and tokens["tokenType"] == "Bearer"
    claims = jwt.decode(tokens["accessToken"], app.config["JWT_SECRET"], algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 900 and claims["sub"] == str(user_id)
    assert api_works(client, tokens["accessToken"])
    # Only the SHA-256 of the refresh token is stored.
    digest = hashlib.sha256(tokens["refreshToken"].encode()).hexdigest()
    assert sql(app, "select token_hash, parent_id from refresh_tokens") == [(digest, None)]
    assert sql(app, "select id from refresh_token_families") == [(claims["fam"],)]


def test_login_reports_an_unverified_address_and_a_later_update(app, client):
    create_user(app, password=PASSWORD, verified=False)
    first = client.post("/api/v1/auth/login", json=LOGIN).get_json()["user"]
    assert first["emailVerified"] is False
    time.sleep(1.05)  # updatedAt has whole seconds
    with app.app_context():
        sessions.end_sessions(db.session.scalar(db.select(User.id)))
    second = client.post("/api/v1/auth/login", json=LOGIN).get_json()["user"]
    assert second["updatedAt"] > first["updatedAt"]


@pytest.mark.parametrize(
    "body",
    [
        {"email": "ada@example.com", "password": "wrong password!"},
        {"email": "nobody@example.com", "password": PASSWORD},
    ],
)
def test_login_refuses_bad_credentials_alike(client, user_id, body):
    response = client.post("/api/v1/auth/login", json=body)
    assert_error(response, "/auth/login", 401, "invalid_credentials")
    assert response.get_json()["error"]["message"] == "Incorrect email or password."


def test_login_refuses_deactivated_and_deleted_accounts(app, client, user_id):
    with app.app_context():
        account_status.deactivate(db.session.get(User, user_id))
    assert_error(
        client.post("/api/v1/auth/login", json=LOGIN), "/auth/login", 401, "account_deactivated"
    )
    wrong = {**LOGIN, "password": "wrong password!"}
    assert_error(
        client.post("/api/v1/auth/login", json=wrong), "/auth/login", 401, "invalid_credentials"
    )
    other = create_user(app, email="bo@example.com", password=PASSWORD)
    with app.app_context():
        delete_account(other)
    response = client.post("/api/v1/auth/login", json={**LOGIN, "email": "bo@example.com"})
    assert_error(response, "/auth/login", 401, "invalid_credentials")


@pytest.mark.parametrize(
    "config_overrides", [{"RATELIMIT_ENABLED": True, "LOGIN_ACCOUNT_RATE_LIMIT": "2 per minute"}]
)
def test_login_spends_the_login_pages_budgets(client, user_id):
    """The same budgets as the log-in page and /auth/token: no third door for guessing."""
    wrong = {**LOGIN, "password": "wrong password!"}
    assert client.post("/api/v1/auth/token", json=wrong).status_code == 401
    assert client.post("/api/v1/auth/login", json=wrong).status_code == 401
    limited = client.post("/api/v1/auth/login", json=LOGIN)
    assert_error(limited, "/auth/login", 429, "rate_limited")
    assert int(limited.headers["Retry-After"]) > 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"email": "ada@example.com"},
        {"email": 1, "password": PASSWORD},
        {"email": "ada@example.com", "password": None},
        {"email": "ada@example.com", "password": "x" * 129},
        {"email": "ada@example.com", "password": PASSWORD, "remember": True},
    ],
)
def test_login_validates_its_body(client, user_id, body):
    response = client.post("/api/v1/auth/login", json=body)
    assert_error(response, "/auth/login", 400, "validation_error")


@pytest.mark.parametrize("config_overrides", [{"ACCESS_TOKEN_LIFETIME_SECONDS": 1}])
def test_access_tokens_from_login_expire(client, user_id):
    tokens = log_in(client)
    assert tokens["expiresIn"] == 1
    claims = jwt.decode(tokens["accessToken"], options={"verify_signature": False})
    time.sleep(max(0.0, claims["exp"] - time.time()) + 0.05)
    assert not api_works(client, tokens["accessToken"])
    # The refresh token still gives a fresh one.
    assert api_works(
        client, refresh(client, tokens["refreshToken"]).get_json()["tokens"]["accessToken"]
    )


# --- POST /auth/refresh -----------------------------------------------------------------------


def test_refresh_rotates_the_refresh_token(app, client, user_id):
    first = log_in(client)
    response = refresh(client, first["refreshToken"])
    assert response.status_code == 200
    body = assert_conforms(response, "POST", "/auth/refresh")
    assert response.headers["Cache-Control"] == "no-store"
    assert body["success"] is True
    second = body["tokens"]
    assert second["refreshToken"] != first["refreshToken"] and second["expiresIn"] == 900
    assert api_works(client, second["accessToken"]) and api_works(client, first["accessToken"])
    third = refresh(client, second["refreshToken"]).get_json()["tokens"]
    # One chain: each token's parent is the one before, all in the log-in's family, one live.
    rows = sql(
        app,
        "select id, parent_id, family_id, revoked_at is null from refresh_tokens order by id",
    )
    assert [row[1] for row in rows] == [None, rows[0][0], rows[1][0]]
    assert len({row[2] for row in rows}) == 1
    assert [row[3] for row in rows] == [False, False, True]
    assert api_works(client, third["accessToken"])


def test_a_reused_refresh_token_revokes_its_whole_family(app, client, user_id):
    first = log_in(client)
    other_login = log_in(client)  # another device: its own family, untouched
    second = refresh(client, first["refreshToken"]).get_json()["tokens"]
    third = refresh(client, second["refreshToken"]).get_json()["tokens"]

    reused = refresh(client, first["refreshToken"])
    assert_error(reused, "/auth/refresh", 401, "refresh_token_reused")
    # Every token descended from that log-in is dead: refresh and access alike, at once.
    assert_error(
        refresh(client, third["refreshToken"]), "/auth/refresh", 401, "invalid_refresh_token"
    )
    for tokens in (first, second, third):
        assert not api_works(client, tokens["accessToken"])
    assert sorted(families(app)) == [(False, None), (True, "reuse")]
    assert sql(
        app,
        "select count(*) from refresh_tokens join refresh_token_families f on f.id = family_id "
        "where f.revoked_reason = 'reuse' and refresh_tokens.revoked_at is null",
    ) == [(0,)]
    # The other device carries on.
    assert api_works(client, other_login["accessToken"])
    assert refresh(client, other_login["refreshToken"]).status_code == 200


def test_an_expired_refresh_token_is_refused_without_revoking_anything(app, client, user_id):
    tokens = log_in(client)
    sql_expire = "update refresh_tokens set expires_at = created_at"
    with app.app_context():
        db.session.execute(db.text(sql_expire))
        db.session.commit()
    response = refresh(client, tokens["refreshToken"])
    assert_error(response, "/auth/refresh", 401, "invalid_refresh_token")
    assert families(app) == [(False, None)]
    assert api_works(client, tokens["accessToken"])  # its own 15 minutes still run


@pytest.mark.parametrize("token", ["", "x", "A" * 43, "a" * 512])
def test_unknown_refresh_tokens_are_refused(client, user_id, token):
    log_in(client)
    assert_error(refresh(client, token), "/auth/refresh", 401, "invalid_refresh_token")


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"json": {}}, 400, "validation_error"),
        ({"json": {"refreshToken": None}}, 400, "validation_error"),
        ({"json": {"refreshToken": 12345}}, 400, "validation_error"),
        ({"json": {"refreshToken": ["a"]}}, 400, "validation_error"),
        ({"json": {"refreshToken": "a" * 513}}, 400, "validation_error"),
        ({"json": {"refreshToken": "a" * 100_000}}, 400, "validation_error"),
        ({"json": {"refreshToken": "a", "extra": 1}}, 400, "validation_error"),
        ({"json": ["a"]}, 400, "validation_error"),
        ({"json": "a"}, 400, "validation_error"),
        ({"data": "{not json", "content_type": "application/json"}, 400, "invalid_json"),
        ({"data": "refreshToken=a", "content_type": "text/plain"}, 415, "unsupported_media_type"),
        ({"json": {"refreshToken": "a\x00b"}}, 400, "invalid_characters"),
    ],
)
@pytest.mark.parametrize("path", ["/auth/refresh", "/auth/logout"])
def test_bad_bodies_get_a_json_error_never_a_500(client, user_id, path, kwargs, status, code):
    response = client.post(f"/api/v1{path}", **kwargs)
    assert_error(response, path, status, code)


def test_a_refresh_token_is_not_an_access_token(client, user_id):
    tokens = log_in(client)
    assert not api_works(client, tokens["refreshToken"])
    assert_error(
        refresh(client, tokens["accessToken"]), "/auth/refresh", 401, "invalid_refresh_token"
    )


def test_auth_token_still_issues_hour_long_tokens_without_a_family(app, client, user_id):
    response = client.post("/api/v1/auth/token", json=LOGIN)
    body = assert_conforms(response, "POST", "/auth/token")
    assert set(body) == {"accessToken", "tokenType", "expiresIn"} and body["expiresIn"] == 3600
    assert "fam" not in jwt.decode(body["accessToken"], options={"verify_signature": False})
    log_out(client, log_in(client)["refreshToken"])  # another log-in's log-out leaves it be
    assert api_works(client, body["accessToken"])
    assert sql(app, "select count(*) from refresh_token_families") == [(1,)]


# --- POST /auth/logout ------------------------------------------------------------------------


def test_logout_revokes_the_family_and_its_access_tokens(app, client, user_id):
    tokens = log_in(client)
    other = log_in(client)
    rotated = refresh(client, tokens["refreshToken"]).get_json()["tokens"]
    response = log_out(client, rotated["refreshToken"])
    assert response.status_code == 200
    assert assert_conforms(response, "POST", "/auth/logout") == {
        "success": True,
        "message": "Logged out.",
    }
    assert not api_works(client, tokens["accessToken"]) and not api_works(
        client, rotated["accessToken"]
    )
    assert_error(
        refresh(client, rotated["refreshToken"]), "/auth/refresh", 401, "invalid_refresh_token"
    )
    assert api_works(client, other["accessToken"])
    assert sorted(families(app)) == [(False, None), (True, "logout")]
    # Again, or with an older token of the family, or an unknown one: 200, nothing changes.
    for token in (rotated["refreshToken"], tokens["refreshToken"], "never-issued"):
        assert log_out(client, token).status_code == 200
    assert sorted(families(app)) == [(False, None), (True, "logout")]


# --- everything that ends sessions ends refresh tokens ---------------------------------------


def _web_logout(app, user_id):
    client = app.test_client()
    AuthActions(app, client).login()
    assert AuthActions(app, client).logout().status_code == 303


def _password_change(app, user_id):
    with app.test_request_context():
        sessions.change_password(db.session.get(User, user_id), "an entirely new passphrase")


def _deactivation(app, user_id):
    with app.app_context():
        account_status.deactivate(db.session.get(User, user_id))


def _lowered_role(app, user_id):
    with app.app_context():
        account_status.set_role(db.session.get(User, user_id), "marketing")
    with app.app_context():
        assert account_status.set_role(db.session.get(User, user_id), "user")


def _deletion(app, user_id):
    with app.app_context():
        delete_account(user_id)


@pytest.mark.parametrize(
    "end", [_web_logout, _password_change, _deactivation, _lowered_role, _deletion]
)
def test_whatever_ends_sessions_ends_refresh_tokens(app, client, user_id, end):
    first, second = log_in(client), log_in(client)
    end(app, user_id)
    for tokens in (first, second):
        assert not api_works(client, tokens["accessToken"])
        response = refresh(client, tokens["refreshToken"])
        assert_error(response, "/auth/refresh", 401, "invalid_refresh_token")
    assert families(app) == [(True, "sessions_ended")] * 2
    assert sql(app, "select count(*) from refresh_tokens where revoked_at is null") == [(0,)]


def test_a_family_started_before_a_version_bump_is_refused_even_if_not_marked(app, client, user_id):
    """The session version is the guarantee; marking the family revoked is bookkeeping."""
    tokens = log_in(client)
    with app.app_context():
        db.session.execute(db.text("update users set session_version = session_version + 1"))
        db.session.commit()
    response = refresh(client, tokens["refreshToken"])
    assert_error(response, "/auth/refresh", 401, "invalid_refresh_token")
    assert families(app) == [(True, "sessions_ended")]


# --- concurrency ------------------------------------------------------------------------------


@pytest.mark.parametrize("attempts", [2, 8])
def test_one_token_refreshes_once_under_concurrency(app, user_id, attempts):
    """Threads present the same token at once: exactly one gets a new pair; the others are
    treated as reuse, which revokes the family (the winner's new token included). No grace
    period: a client that lost the answer to its refresh must log in again."""
    token = log_in(app.test_client())["refreshToken"]
    barrier = threading.Barrier(attempts)
    answers: list[tuple[int, str | None]] = []
    lock = threading.Lock()

    def attempt() -> None:
        client = app.test_client()
        barrier.wait()
        response = refresh(client, token)
        body = response.get_json()
        code = body["error"]["code"] if response.status_code != 200 else None
        with lock:
            answers.append((response.status_code, code))

    threads = [threading.Thread(target=attempt) for _ in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers.count((200, None)) == 1
    # The first loser finds the token exchanged (reuse) and revokes the family; later ones may
    # find the family revoked already.
    losers = [answer for answer in answers if answer != (200, None)]
    assert (401, "refresh_token_reused") in losers
    assert set(losers) <= {(401, "refresh_token_reused"), (401, "invalid_refresh_token")}
    assert families(app) == [(True, "reuse")]
    assert sql(app, "select count(*) from refresh_tokens where revoked_at is null") == [(0,)]
    assert sql(app, "select count(*) from refresh_tokens") == [(2,)]


def test_logouts_racing_refreshes_leave_the_family_revoked_and_never_a_500(app, user_id):
    """Log-outs and refreshes of one family at once: every answer is 200 or 401, and at the end
    the family is revoked with no live token (SQLite: no 'database is locked')."""
    token = log_in(app.test_client())["refreshToken"]
    barrier = threading.Barrier(6)
    statuses: list[int] = []
    lock = threading.Lock()

    def attempt(path: str) -> None:
        client = app.test_client()
        barrier.wait()
        response = client.post(f"/api/v1{path}", json={"refreshToken": token})
        with lock:
            statuses.append(response.status_code)

    paths = ["/auth/logout", "/auth/refresh"] * 3
    threads = [threading.Thread(target=attempt, args=(path,)) for path in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(statuses) <= {200, 401} and len(statuses) == 6
    assert [revoked for revoked, _ in families(app)] == [True]
    assert sql(app, "select count(*) from refresh_tokens where revoked_at is null") == [(0,)]
