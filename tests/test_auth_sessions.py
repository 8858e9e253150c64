"""Session versions: logging out, a password change or a deleted account end every session and
access token of the user, on every worker; logging in starts a fresh session (issue 13, item 6)."""

from __future__ import annotations

import time

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete

from tests.api.conftest import PASSWORD, bearer, issue_api_key, issue_token
from tests.conftest import AuthActions, create_user, csrf_token, sql
from webapp.extensions import db
from webapp.models import User


def copy_of(client: FlaskClient, app: Flask | None = None) -> FlaskClient:
    """Another browser holding the session cookie `client` has now (a saved or stolen cookie)."""
    thief = (app or client.application).test_client()
    cookie = client.get_cookie("session")
    assert cookie is not None
    thief.set_cookie("session", cookie.value)
    return thief


def account_status(client: FlaskClient) -> int:
    return client.get("/account").status_code


def test_a_cookie_saved_before_logout_no_longer_opens_the_account(app, client, auth):
    create_user(app)
    auth.login()
    saved = copy_of(client)
    assert account_status(saved) == 200
    assert auth.logout().status_code == 303
    response = saved.get("/account")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_logging_out_ends_every_session_of_the_user(app, client, auth):
    create_user(app)
    auth.login()
    laptop = app.test_client()
    AuthActions(app, laptop).login()
    auth.logout()
    assert account_status(laptop) == 302
    # Logging in again works, and only the new session is valid.
    AuthActions(app, laptop).login()
    assert account_status(laptop) == 200
    assert account_status(client) == 302


def test_a_logout_on_another_worker_ends_the_session_here(app, client, auth, other_worker):
    create_user(app)
    auth.login()
    assert account_status(client) == 200  # this worker now caches the user row
    elsewhere = copy_of(client, other_worker)
    token = csrf_token(elsewhere, "/account")
    assert elsewhere.post("/logout", data={"csrf_token": token}).status_code == 303
    deadline = time.monotonic() + 3  # PostgreSQL's notification arrives within milliseconds
    while account_status(client) == 200 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert account_status(client) == 302


def test_a_login_on_another_worker_is_not_refused_here_by_a_stale_cache(
    app, client, auth, other_worker
):
    create_user(app)
    auth.login()
    assert account_status(client) == 200  # cached here with version 0
    # Log out and in again on the other worker: the new session carries version 1 before this
    # worker may have heard of the change.
    elsewhere = copy_of(client, other_worker)
    elsewhere.post("/logout", data={"csrf_token": csrf_token(elsewhere, "/account")})
    AuthActions(other_worker, elsewhere).login()
    assert account_status(copy_of(elsewhere, app)) == 200


def test_the_pre_login_csrf_token_no_longer_works_after_login(app, client):
    create_user(app)
    planted = csrf_token(client, "/login")  # e.g. fixed by an attacker before the victim logs in
    response = client.post(
        "/login",
        data={"email": "ada@example.com", "password": PASSWORD, "csrf_token": planted},
    )
    assert response.status_code == 303
    refused = client.post("/logout", data={"csrf_token": planted})
    assert refused.status_code == 400
    assert account_status(client) == 200  # still logged in: the logout was refused
    assert (
        client.post("/logout", data={"csrf_token": csrf_token(client, "/account")}).status_code
        == 303
    )


def test_sessions_from_before_versions_are_refused(app, client, auth):
    user_id = create_user(app)
    with client.session_transaction() as session:
        session["_user_id"] = str(user_id)  # a cookie written before session versions existed
        session["_fresh"] = True
    assert account_status(client) == 302


def test_a_password_change_ends_sessions_and_access_tokens_but_not_api_keys(app, client, auth):
    user_id = create_user(app)
    auth.login()
    token = issue_token(client)
    key = issue_api_key(app, user_id)
    assert client.get("/api/v1/credits/balance", headers=bearer(token)).status_code == 200
    from webapp.auth import sessions

    with app.test_request_context():
        sessions.change_password(db.session.get(User, user_id), "a new long passphrase")
    assert account_status(client) == 302
    assert client.get("/api/v1/credits/balance", headers=bearer(token)).status_code == 401
    assert client.get("/api/v1/credits/balance/api", headers=bearer(key)).status_code == 200
    # The new password works, the old one does not.
    assert AuthActions(app, app.test_client()).login(password=PASSWORD).status_code == 400
    fresh = app.test_client()
    assert AuthActions(app, fresh).login(password="a new long passphrase").status_code == 303
    assert account_status(fresh) == 200


def test_logging_out_revokes_access_tokens_too(app, client, auth):
    create_user(app)
    auth.login()
    token = issue_token(client)
    auth.logout()
    assert client.get("/api/v1/credits/balance", headers=bearer(token)).status_code == 401
    assert (
        client.get("/api/v1/credits/balance", headers=bearer(issue_token(client))).status_code
        == 200
    )


def test_a_deleted_account_ends_its_sessions_and_tokens(app, client, auth):
    user_id = create_user(app)
    auth.login()
    token = issue_token(client)
    saved = copy_of(client)
    with app.app_context():
        db.session.execute(delete(User).where(User.id == user_id))
        db.session.commit()
    assert account_status(saved) == 302
    assert client.get("/api/v1/credits/balance", headers=bearer(token)).status_code == 401


def test_end_sessions_bumps_the_version_once_per_call(app):
    from webapp.auth import sessions

    user_id = create_user(app)
    with app.test_request_context():
        sessions.end_sessions(user_id)
        sessions.end_sessions(user_id)
    assert sql(app, "select session_version from users") == [(2,)]


def test_loading_the_session_user_keeps_changes_made_to_the_row_earlier_in_the_request(app):
    """Flask-Login loads the user lazily (at the first template, say, of a mail a view renders
    after changing the row): that load must not overwrite the change with the cached copy."""
    from webapp.auth.views import load_user

    user_id = create_user(app, email="before@example.com")
    with app.test_request_context():
        assert load_user(f"{user_id}:0") is not None  # the row, as it was, in the member cache
    with app.test_request_context():
        row = db.session.get(User, user_id)
        row.email = "after@example.com"
        loaded = load_user(row.get_id())
        assert loaded is row
        db.session.commit()
    with app.app_context():
        assert db.session.get(User, user_id).email == "after@example.com"
