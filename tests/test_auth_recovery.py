"""Password reset and address verification (webapp/auth/recovery.py, tokens.py, mails.py)."""

from __future__ import annotations

import time

import pytest
from itsdangerous import TimestampSigner

from tests.api.conftest import issue_token
from tests.auth_helpers import (
    NEW_PASSWORD,
    all_mail,
    forgot,
    last_link,
    link,
    mails_to,
    post_form,
    reset,
)
from tests.conftest import AuthActions, create_user, csrf_token, sql
from webapp.auth import tokens
from webapp.extensions import db
from webapp.models import User

PASSWORD = "correct horse battery"


def logged_in(app, email="ada@example.com", password=PASSWORD) -> AuthActions:
    auth = AuthActions(app, app.test_client())
    assert auth.login(email, password).status_code == 303
    return auth


def account_status(client) -> int:
    return client.get("/account").status_code


# --- Forgot password ----------------------------------------------------------------------------


def test_the_login_page_links_to_forgot_password(client):
    html = client.get("/login").get_data(as_text=True)
    assert 'href="/password/forgot"' in html and "Forgot your password?" in html


def test_known_and_unknown_addresses_get_the_same_answer_and_only_the_account_gets_mail(app):
    create_user(app, "ada@example.com")
    answers = {}
    for email in ("ADA@example.com ", "nobody@example.com"):
        client = app.test_client()
        response = forgot(client, email)
        page = client.get(response.headers["Location"])
        answers[email.strip().lower()] = (
            response.status_code,
            response.headers["Location"],
            response.get_data(),
            page.status_code,
            page.get_data(as_text=True).replace(email.strip().lower(), "ADDRESS"),
        )
    assert answers["ada@example.com"] == answers["nobody@example.com"]
    status, location, _, page_status, page = answers["ada@example.com"]
    assert (status, location, page_status) == (303, "/password/forgot/sent", 200)
    assert "If <strong>ADDRESS</strong> belongs to an account" in page
    # Only the account's owner is mailed; nothing at all for the unknown address.
    [(subject, text)] = mails_to(app, "ada@example.com")
    assert subject == "Reset your LLMGen password" and "/password/reset/" in text
    assert "works once, for 60 minutes" in text
    assert all_mail(app) == [("ada@example.com", subject)]


def test_a_bad_address_is_refused_on_the_form(client):
    response = post_form(client, "/password/forgot", email="not an address")
    assert response.status_code == 400
    assert "Enter a valid email address" in response.get_data(as_text=True)
    assert post_form(client, "/password/forgot", email="").status_code == 400


def test_the_sent_page_needs_a_request_first(client):
    response = client.get("/password/forgot/sent")
    assert response.status_code == 303 and response.headers["Location"] == "/password/forgot"


def test_forgot_password_needs_the_csrf_token(client):
    assert client.post("/password/forgot", data={"email": "a@example.com"}).status_code == 400


@pytest.mark.parametrize("state", ["deactivated_at", "deleted_at"])
def test_stopped_and_deleted_accounts_get_no_link(app, client, state):
    create_user(app, "ada@example.com")
    with app.app_context():
        db.session.execute(db.text(f"update users set {state} = created_at"))
        db.session.commit()
    response = forgot(client, "ada@example.com")
    assert response.status_code == 303
    assert all_mail(app) == []


@pytest.mark.parametrize(
    "config_overrides",
    [
        {
            "RATELIMIT_ENABLED": True,
            "PASSWORD_RESET_RATE_LIMIT": "3 per minute",
            "PASSWORD_RESET_ACCOUNT_RATE_LIMIT": "2 per minute",
        }
    ],
)
def test_requests_are_limited_per_address_typed_and_per_client(app):
    create_user(app, "ada@example.com")

    def ask(email: str, address: str):
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = address
        return forgot(client, email).status_code

    # Per address typed, known or not, from any client address: the third is refused alike.
    for email in ("ada@example.com", "nobody@example.com"):
        assert [ask(email, f"198.51.100.{n}") for n in range(3)] == [303, 303, 429]
    assert len(mails_to(app, "ada@example.com")) == 2
    # Per client address, over every address typed.
    assert [ask(f"x{n}@example.com", "203.0.113.9") for n in range(4)] == [303, 303, 303, 429]


# --- The reset link -----------------------------------------------------------------------------


def test_a_reset_sets_the_password_logs_in_and_mails_a_notice(app, client):
    user_id = create_user(app, "ada@example.com", verified=False)
    forgot(client, "ada@example.com")
    path = last_link(app, "ada@example.com", "/password/reset/")

    # The link's token leaves the URL at once: the form lives on a token-free address.
    opened = client.get(path)
    assert opened.status_code == 303 and opened.headers["Location"] == "/password/reset"
    assert opened.headers["Referrer-Policy"] == "no-referrer"
    page = client.get("/password/reset")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Choose a new password" in html
    assert path.rsplit("/", 1)[1] not in html
    assert page.headers["Cache-Control"] == "no-store"

    token = csrf_token(client, "/password/reset")
    response = client.post(
        "/password/reset", data={"new_password": NEW_PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 303 and response.headers["Location"] == "/account"
    # Logged in, on a fresh session.
    assert "Your password was changed" in client.get("/account").get_data(as_text=True)
    # The new password works, the old one does not; the mail proved the address.
    assert AuthActions(app, app.test_client()).login(password=PASSWORD).status_code == 400
    assert AuthActions(app, app.test_client()).login(password=NEW_PASSWORD).status_code == 303
    assert sql(app, "select email_verified_at is not null from users where id = :id", id=user_id)[
        0
    ][0]
    subjects = [subject for subject, _ in mails_to(app, "ada@example.com")]
    assert subjects == ["Reset your LLMGen password", "Your LLMGen password was changed"]


def test_a_reset_link_works_once(app, client):
    create_user(app, "ada@example.com")
    forgot(client, "ada@example.com")
    path = last_link(app, "ada@example.com", "/password/reset/")
    assert reset(client, path).status_code == 303

    again = reset(app.test_client(), path, "another fine passphrase 7")
    assert again.status_code == 410
    html = again.get_data(as_text=True)
    assert "This link has expired" in html and 'href="/password/forgot"' in html
    assert AuthActions(app, app.test_client()).login(password=NEW_PASSWORD).status_code == 303


def test_any_password_change_ends_every_outstanding_link(app):
    create_user(app, "ada@example.com")
    first, second = app.test_client(), app.test_client()
    forgot(first, "ada@example.com")
    first_link = last_link(app, "ada@example.com", "/password/reset/")
    time.sleep(1.1)  # links carry their time to the second: this one differs
    forgot(second, "ada@example.com")
    second_link = last_link(app, "ada@example.com", "/password/reset/")
    assert first_link != second_link
    assert reset(second, second_link).status_code == 303
    assert reset(first, first_link).status_code == 410


def test_a_link_submitted_after_the_password_changed_elsewhere_is_refused(app):
    """The form was open while the link died: the submit re-checks it under the row lock."""
    create_user(app, "ada@example.com")
    client = app.test_client()
    forgot(client, "ada@example.com")
    path = last_link(app, "ada@example.com", "/password/reset/")
    client.get(path)
    token = csrf_token(client, "/password/reset")
    owner = logged_in(app)
    owner.logout()  # log-out everywhere moves the session version: the link dies
    response = client.post(
        "/password/reset", data={"new_password": NEW_PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 410
    assert AuthActions(app, app.test_client()).login(password=PASSWORD).status_code == 303


def test_an_expired_link_is_refused_with_a_way_to_ask_again(app, client, monkeypatch):
    create_user(app, "ada@example.com")
    with app.test_request_context():
        user = db.session.get(User, 1) or db.session.scalars(db.select(User)).one()
        # A link made 61 minutes ago (PASSWORD_RESET_MAX_AGE is one hour).
        made_at = int(TimestampSigner.get_timestamp(None)) - 61 * 60  # type: ignore[arg-type]
        monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: made_at)
        token = tokens.reset_token(user)
        monkeypatch.undo()
        fresh = tokens.reset_token(user)
    client.get(f"/password/reset/{token}")
    page = client.get("/password/reset")
    assert page.status_code == 410 and "This link has expired" in page.get_data(as_text=True)
    # The same account's fresh link still works: only the age was wrong.
    assert reset(client, f"/password/reset/{fresh}").status_code == 303


@pytest.mark.parametrize(
    "token",
    ["garbled", "eyJ1IjoxfQ.ZZZZZZ.forged-signature", "x" * 500, "%00%ff", "a.b.c.d"],
)
def test_a_garbled_link_gets_a_helpful_400(app, client, token):
    create_user(app, "ada@example.com")
    client.get(f"/password/reset/{token}")
    page = client.get("/password/reset")
    assert page.status_code == 400
    html = page.get_data(as_text=True)
    assert "This link is not valid" in html and 'href="/password/forgot"' in html


def test_a_token_made_for_another_purpose_is_refused(app, client):
    create_user(app, "ada@example.com")
    with app.test_request_context():
        user = db.session.scalars(db.select(User)).one()
        verify = tokens.verify_token(user)
        reset_token = tokens.reset_token(user)
    client.get(f"/password/reset/{verify}")
    assert client.get("/password/reset").status_code == 400
    assert client.get(f"/verify-email/{reset_token}").status_code == 400


def test_the_reset_page_without_a_link_is_a_400(client):
    assert client.get("/password/reset").status_code == 400


def test_a_link_too_long_to_be_ours_is_refused_at_once(client):
    response = client.get("/password/reset/" + "x" * 5000)
    assert response.status_code == 400 and "This link is not valid" in response.get_data(
        as_text=True
    )
    assert not client.get_cookie("session")


def test_a_weak_new_password_is_refused_and_the_link_still_works(app, client):
    create_user(app, "ada@example.com")
    forgot(client, "ada@example.com")
    path = last_link(app, "ada@example.com", "/password/reset/")
    weak = reset(client, path, "password123")
    assert weak.status_code == 400
    assert "too easy to guess" in weak.get_data(as_text=True)
    assert reset(client, path).status_code == 303


def test_a_reset_ends_every_other_session_and_access_token(app, client):
    create_user(app, "ada@example.com")
    other = logged_in(app)
    jwt = issue_token(app.test_client())
    bearer = {"Authorization": f"Bearer {jwt}"}
    assert app.test_client().get("/api/v1/credits/balance", headers=bearer).status_code == 200

    forgot(client, "ada@example.com")
    assert reset(client, last_link(app, "ada@example.com", "/password/reset/")).status_code == 303

    assert account_status(other.client) == 302  # logged out on its next request
    assert app.test_client().get("/api/v1/credits/balance", headers=bearer).status_code == 401
    assert account_status(client) == 200  # the browser that reset stays in


# --- Verification -------------------------------------------------------------------------------


def test_sign_up_mails_a_verification_link_and_shows_the_banner_until_it_is_used(app, auth):
    assert auth.signup("grace@example.com").status_code == 303
    [(subject, text)] = mails_to(app, "grace@example.com")
    assert subject == "Verify your email address for LLMGen"
    for path in ("/account", "/pricing"):
        html = auth.client.get(path).get_data(as_text=True)
        assert 'data-testid="verify-banner"' in html, path
        assert "Please verify your email address" in html and "grace@example.com" in html

    response = auth.client.get(link(text, "/verify-email/"))
    assert response.status_code == 303 and response.headers["Location"] == "/account"
    html = auth.client.get("/account").get_data(as_text=True)
    assert "grace@example.com is verified" in html and 'data-testid="verify-banner"' not in html
    assert 'data-testid="verify-banner"' not in auth.client.get("/pricing").get_data(as_text=True)
    assert sql(app, "select email_verified_at is not null from users") == [(True,)]


def test_a_verification_link_works_without_logging_in_and_twice(app, auth):
    auth.signup("grace@example.com")
    path = last_link(app, "grace@example.com", "/verify-email/")
    for _ in range(2):
        page = app.test_client().get(path)
        assert page.status_code == 200
        assert "grace@example.com</strong> is verified" in page.get_data(as_text=True)


def test_a_taken_address_at_sign_up_gets_no_verification_mail(app, auth):
    create_user(app, "ada@example.com")
    assert auth.signup("ada@example.com").status_code == 303
    assert all_mail(app) == []


def test_accounts_from_before_verification_are_unverified(app):
    create_user(app, "old@example.com", verified=False)
    auth = logged_in(app, "old@example.com")
    assert 'data-testid="verify-banner"' in auth.client.get("/account").get_data(as_text=True)


def test_resend_mails_a_new_link_and_goes_back(app):
    create_user(app, "old@example.com", verified=False)
    auth = logged_in(app, "old@example.com")
    token = csrf_token(auth.client, "/pricing")
    response = auth.client.post(
        "/verify-email/resend", data={"csrf_token": token, "next": "/pricing"}
    )
    assert response.status_code == 303 and response.headers["Location"] == "/pricing"
    assert "We sent a new verification link" in auth.client.get("/pricing").get_data(as_text=True)
    assert len(mails_to(app, "old@example.com")) == 1
    # Without the CSRF token nothing is sent; an outside `next` is not followed.
    assert auth.client.post("/verify-email/resend").status_code == 400
    response = auth.client.post(
        "/verify-email/resend",
        data={"csrf_token": token, "next": "https://evil.example/"},
    )
    assert response.headers["Location"] == "/account"
    assert len(mails_to(app, "old@example.com")) == 2
    assert app.test_client().post("/verify-email/resend").status_code in (302, 400)


@pytest.mark.parametrize(
    "config_overrides",
    [{"RATELIMIT_ENABLED": True, "VERIFY_EMAIL_RESEND_RATE_LIMIT": "2 per minute"}],
)
def test_resend_is_limited_per_account(app):
    create_user(app, "old@example.com", verified=False)
    auth = logged_in(app, "old@example.com")
    statuses = [post_form(auth.client, "/verify-email/resend").status_code for _ in range(3)]
    assert statuses == [303, 303, 429]
    assert len(mails_to(app, "old@example.com")) == 2


def test_a_link_for_an_address_no_longer_on_the_account_verifies_nothing(app, auth):
    auth.signup("grace@example.com")
    path = last_link(app, "grace@example.com", "/verify-email/")
    with app.app_context():
        db.session.execute(db.text("update users set email = 'grace@new.example'"))
        db.session.commit()
    page = app.test_client().get(path)
    assert page.status_code == 410
    assert sql(app, "select email_verified_at from users") == [(None,)]


def test_an_expired_or_garbled_verification_link_is_refused(app, monkeypatch):
    create_user(app, "ada@example.com", verified=False)
    with app.test_request_context():
        user = db.session.scalars(db.select(User)).one()
        made_at = int(TimestampSigner.get_timestamp(None)) - 8 * 86400  # type: ignore[arg-type]
        monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: made_at)
        old = tokens.verify_token(user)
    monkeypatch.undo()
    assert app.test_client().get(f"/verify-email/{old}").status_code == 410
    assert app.test_client().get("/verify-email/nonsense").status_code == 400
    assert sql(app, "select email_verified_at from users") == [(None,)]


# --- The unverified-account policy --------------------------------------------------------------


def test_an_unverified_account_cannot_create_api_keys_until_verified(app, auth):
    auth.signup("grace@example.com", PASSWORD)
    html = auth.client.get("/account").get_data(as_text=True)
    assert 'data-testid="api-keys-need-verification"' in html
    assert 'action="/account/api-keys"' not in html
    # A crafted POST is refused with the same words, and no key exists.
    response = post_form(auth.client, "/account/api-keys", name="ci")
    assert response.status_code == 303
    html = auth.client.get("/account").get_data(as_text=True)
    assert "Verify your email address before creating API keys" in html
    assert sql(app, "select count(*) from api_keys") == [(0,)]

    auth.client.get(last_link(app, "grace@example.com", "/verify-email/"))
    response = post_form(auth.client, "/account/api-keys", name="ci")
    assert response.status_code == 200 and "llmgen_" in response.get_data(as_text=True)
    assert sql(app, "select count(*) from api_keys") == [(1,)]


def test_an_unverified_account_may_still_log_in_and_check_out(app, auth):
    auth.signup("grace@example.com", PASSWORD)
    token = csrf_token(auth.client, "/pricing")
    response = auth.client.post(
        "/checkout", data={"plan": "starter", "cycle": "monthly", "csrf_token": token}
    )
    assert response.status_code == 303, response.get_data(as_text=True)[:300]
    assert "/sandbox/checkout/" in response.headers["Location"]
    jwt = issue_token(app.test_client(), "grace@example.com")
    assert jwt
