"""Changing the password and the email address (webapp/auth/account_security.py)."""

from __future__ import annotations

import re

import pytest

from tests.api.conftest import issue_token
from tests.auth_helpers import (
    NEW_PASSWORD,
    all_mail,
    forgot,
    last_link,
    mails_to,
    post_form,
    reset,
)
from tests.conftest import AuthActions, create_user, sql
from webapp.auth import tokens
from webapp.extensions import db
from webapp.models import User

PASSWORD = "correct horse battery"


def logged_in(app, email="ada@example.com", password=PASSWORD) -> AuthActions:
    auth = AuthActions(app, app.test_client())
    assert auth.login(email, password).status_code == 303
    return auth


def change_password(client, current=PASSWORD, new=NEW_PASSWORD):
    return post_form(client, "/account/password", current_password=current, new_password=new)


def change_email(client, new_email, password=PASSWORD):
    return post_form(client, "/account/email", new_email=new_email, password=password)


def test_the_account_page_links_to_both(app):
    create_user(app)
    html = logged_in(app).client.get("/account").get_data(as_text=True)
    assert "Sign-in and security" in html
    assert 'href="/account/email"' in html and 'href="/account/password"' in html


@pytest.mark.parametrize("path", ["/account/password", "/account/email"])
def test_both_need_a_login(client, path):
    response = client.get(path)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


# --- Password -----------------------------------------------------------------------------------


def test_a_wrong_current_password_changes_nothing(app):
    create_user(app)
    auth = logged_in(app)
    response = change_password(auth.client, current="not my password at all")
    assert response.status_code == 400
    assert "That is not your current password." in response.get_data(as_text=True)
    assert all_mail(app) == []
    assert AuthActions(app, app.test_client()).login(password=PASSWORD).status_code == 303


def test_a_weak_new_password_is_refused(app):
    create_user(app)
    auth = logged_in(app)
    response = change_password(auth.client, new="ada@example.com")
    assert response.status_code == 400
    assert "too easy to guess" in response.get_data(as_text=True)


def test_a_change_keeps_this_session_and_ends_every_other(app):
    create_user(app)
    auth, other = logged_in(app), logged_in(app)
    jwt = issue_token(app.test_client())
    bearer = {"Authorization": f"Bearer {jwt}"}

    response = change_password(auth.client)
    assert response.status_code == 303 and response.headers["Location"] == "/account"
    html = auth.client.get("/account").get_data(as_text=True)
    assert "Your password was changed. Every other session has ended." in html
    assert other.client.get("/account").status_code == 302
    assert app.test_client().get("/api/v1/credits/balance", headers=bearer).status_code == 401
    assert AuthActions(app, app.test_client()).login(password=NEW_PASSWORD).status_code == 303
    [(subject, text)] = mails_to(app, "ada@example.com")
    assert subject == "Your LLMGen password was changed"
    assert "http://localhost/password/forgot" in text


@pytest.mark.parametrize(
    "config_overrides",
    [{"RATELIMIT_ENABLED": True, "LOGIN_ACCOUNT_IP_RATE_LIMIT": "2 per minute"}],
)
def test_the_current_password_is_a_password_check_with_its_budget(app):
    create_user(app)
    auth = logged_in(app)  # spends one
    statuses = [change_password(auth.client, current=f"guess number {n}") for n in range(2)]
    assert [r.status_code for r in statuses] == [400, 429]


# --- Email --------------------------------------------------------------------------------------


def test_a_change_of_address_is_confirmed_from_the_new_one(app):
    create_user(app)
    auth = logged_in(app)
    response = change_email(auth.client, " Ada@New.Example ")
    assert response.status_code == 303 and response.headers["Location"] == "/account"
    html = auth.client.get("/account").get_data(as_text=True)
    assert "We sent a link to ada@new.example" in html
    # Nothing changed yet; the old address is told, the new one gets the link.
    assert sql(app, "select email from users") == [("ada@example.com",)]
    [(subject, text)] = mails_to(app, "ada@example.com")
    assert "change of your LLMGen email address was requested" in subject
    assert "ada@new.example" in text
    path = last_link(app, "ada@new.example", "/account/email/confirm/")

    # Opened in any browser (the mail may be read elsewhere): the switch happens.
    page = app.test_client().get(path)
    assert page.status_code == 200 and "ada@new.example" in page.get_data(as_text=True)
    assert sql(app, "select email, email_verified_at is not null from users") == [
        ("ada@new.example", True)
    ]
    notices = mails_to(app, "ada@example.com")
    assert notices[-1][0] == "Your LLMGen email address was changed"
    assert "now uses ada@new.example" in notices[-1][1]
    # The session stays; the new address logs in, the old one no longer does.
    assert auth.client.get("/account").status_code == 200
    assert AuthActions(app, app.test_client()).login("ada@new.example").status_code == 303
    assert AuthActions(app, app.test_client()).login("ada@example.com").status_code == 400
    # The link works once.
    again = app.test_client().get(path)
    assert again.status_code == 410 and 'href="/account/email"' in again.get_data(as_text=True)


def test_the_logged_in_owner_lands_on_the_account_page(app):
    create_user(app)
    auth = logged_in(app)
    change_email(auth.client, "ada@new.example")
    # The account page puts the user's row in the member cache; the confirmation, which loads
    # the logged-in user while rendering its mail, must not bring the cached address back.
    auth.client.get("/account")
    response = auth.client.get(last_link(app, "ada@new.example", "/account/email/confirm/"))
    assert response.status_code == 303 and response.headers["Location"] == "/account"
    html = auth.client.get("/account").get_data(as_text=True)
    assert "Your email address is now ada@new.example" in html
    assert "Signed in as <strong>ada@new.example</strong>" in html
    assert sql(app, "select email, email_verified_at is not null from users") == [
        ("ada@new.example", True)
    ]


def test_a_reset_in_a_browser_logged_in_as_the_owner_marks_the_address_verified(app):
    create_user(app, verified=False)
    auth = logged_in(app)
    auth.client.get("/account")  # the row, unverified, in the member cache
    forgot(auth.client, "ada@example.com")
    assert (
        reset(auth.client, last_link(app, "ada@example.com", "/password/reset/")).status_code == 303
    )
    assert sql(app, "select email_verified_at is not null from users") == [(True,)]


def test_a_wrong_password_or_the_same_address_is_refused(app):
    create_user(app)
    auth = logged_in(app)
    wrong = change_email(auth.client, "ada@new.example", password="not my password at all")
    assert wrong.status_code == 400
    assert "That is not your current password." in wrong.get_data(as_text=True)
    same = change_email(auth.client, "ADA@example.com")
    assert same.status_code == 400 and "already your email address" in same.get_data(as_text=True)
    bad = change_email(auth.client, "not an address")
    assert bad.status_code == 400
    assert all_mail(app) == []


def test_a_taken_address_gets_the_same_answer_and_can_never_be_confirmed(app):
    create_user(app)
    create_user(app, "bob@example.com")
    auth = logged_in(app)
    taken = change_email(auth.client, "bob@example.com")
    taken_page = auth.client.get("/account").get_data(as_text=True)
    free = change_email(auth.client, "ada@new.example")
    free_page = auth.client.get("/account").get_data(as_text=True)
    assert (taken.status_code, taken.headers["Location"]) == (303, "/account")
    assert (free.status_code, free.headers["Location"]) == (303, "/account")
    assert "We sent a link to bob@example.com" in taken_page

    def same(page: str, address: str) -> str:  # but the CSRF tokens, signed to the second
        return re.sub(r'value="[^"]*\.[^"]*"', "TOKEN", page.replace(address, "X"))

    assert same(taken_page, "bob@example.com") == same(free_page, "ada@new.example")
    # Bob is sent nothing; Ada's old address hears of both requests.
    assert mails_to(app, "bob@example.com") == []
    assert len(mails_to(app, "ada@example.com")) == 2

    # A link for the taken address (made by hand: none was sent) is refused by the unique index.
    with app.test_request_context():
        ada = db.session.scalars(db.select(User).where(User.email == "ada@example.com")).one()
        token = tokens.change_email_token(ada, "bob@example.com")
    page = app.test_client().get(f"/account/email/confirm/{token}")
    assert page.status_code == 409
    assert "belongs to another account" in page.get_data(as_text=True)
    assert sql(app, "select email from users order by id") == [
        ("ada@example.com",),
        ("bob@example.com",),
    ]


def test_an_address_taken_after_the_request_is_refused_at_confirmation(app):
    create_user(app)
    auth = logged_in(app)
    change_email(auth.client, "ada@new.example")
    path = last_link(app, "ada@new.example", "/account/email/confirm/")
    create_user(app, "ada@new.example")  # someone signs up with it meanwhile
    assert app.test_client().get(path).status_code == 409
    assert sql(app, "select email from users order by id") == [
        ("ada@example.com",),
        ("ada@new.example",),
    ]


def test_a_password_reset_stops_a_change_someone_else_asked_for(app):
    create_user(app)
    intruder = logged_in(app)
    change_email(intruder.client, "eve@evil.example")
    path = last_link(app, "eve@evil.example", "/account/email/confirm/")
    owner = app.test_client()
    forgot(owner, "ada@example.com")
    assert reset(owner, last_link(app, "ada@example.com", "/password/reset/")).status_code == 303
    assert app.test_client().get(path).status_code == 410
    assert sql(app, "select email from users") == [("ada@example.com",)]


def test_a_garbled_or_expired_confirmation_is_refused(app, monkeypatch):
    import time

    from itsdangerous import TimestampSigner

    create_user(app)
    with app.test_request_context():
        ada = db.session.scalars(db.select(User)).one()
        made_at = int(time.time()) - 25 * 3600
        monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: made_at)
        old = tokens.change_email_token(ada, "ada@new.example")
    monkeypatch.undo()
    assert app.test_client().get(f"/account/email/confirm/{old}").status_code == 410
    assert app.test_client().get("/account/email/confirm/garbled").status_code == 400
    assert sql(app, "select email from users") == [("ada@example.com",)]
