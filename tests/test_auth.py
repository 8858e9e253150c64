"""Sign-up, log-in, log-out: CSRF, normalised unique emails, no enumeration, safe `next`."""

import pytest

from tests.conftest import create_user, csrf_token, sql
from webapp.config import Config


def test_signup_creates_account_and_logs_in(app, client, auth):
    response = auth.signup("Ada@Example.COM ")
    assert response.status_code == 303
    assert response.headers["Location"] == "/signup/done"
    assert client.get("/signup/done").headers["Location"] == "/account"
    assert sql(app, "select email from users") == [("ada@example.com",)]
    assert "ada@example.com" in client.get("/account").get_data(as_text=True)


# The suite hashes with a cheap method (TestConfig); this test uses the one every deployment has.
@pytest.mark.parametrize(
    "config_overrides", [{"PASSWORD_HASH_METHOD": Config().PASSWORD_HASH_METHOD}]
)
def test_password_is_stored_with_a_modern_kdf(app, auth):
    auth.signup()
    [(password_hash,)] = sql(app, "select password_hash from users")
    assert password_hash.startswith("scrypt:")
    assert "correct horse" not in password_hash
    auth.logout()
    assert auth.login().status_code == 303


def test_the_suite_s_cheaper_hash_is_still_salted_and_checked(app, auth):
    create_user(app)
    create_user(app, email="grace@example.com")
    hashes = [row[0] for row in sql(app, "select password_hash from users")]
    assert all(h.startswith("pbkdf2:sha256:") and "correct horse" not in h for h in hashes)
    assert hashes[0] != hashes[1]  # the same password, two salts
    assert "Incorrect email or password." in auth.login(password="wrong password!").text
    assert auth.login().status_code == 303


def test_signup_without_csrf_token_is_refused(app, client):
    response = client.post("/signup", data={"email": "a@example.com", "password": "x" * 12})
    assert response.status_code == 400
    assert sql(app, "select count(*) from users") == [(0,)]


def test_duplicate_email_in_another_case_makes_no_account_and_says_nothing(app, client, auth):
    # Same answer as a new address (tests/reliability/test_signup_probes.py), no log-in.
    create_user(app, email="ada@example.com")
    response = auth.signup("ADA@example.com")
    assert response.status_code == 303
    assert response.headers["Location"] == "/signup/done"
    assert "already exists" not in client.get("/signup/done").get_data(as_text=True)
    assert client.get("/account").status_code == 302
    assert sql(app, "select count(*) from users") == [(1,)]


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("", "correct horse battery", "Enter your email address."),
        ("not-an-email", "correct horse battery", "Enter a valid email address"),
        ("ada@example.com", "short", "Use 10 to 128 characters."),
        ("ada@example.com", "1234567890", "too easy to guess"),
        ("ada@example.com", "ada@example.com!", "too easy to guess"),
        ("ada@example.com", "", "Choose a password."),
    ],
)
def test_signup_form_errors_are_clear(app, auth, email, password, message):
    response = auth.signup(email, password)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert sql(app, "select count(*) from users") == [(0,)]


def test_wrong_password_and_unknown_email_give_the_same_answer(app, auth):
    create_user(app)
    wrong_password = auth.login("ada@example.com", "not the password")
    unknown_email = auth.login("nobody@example.com", "not the password")
    assert wrong_password.status_code == unknown_email.status_code == 400
    for response in (wrong_password, unknown_email):
        assert "Incorrect email or password." in response.get_data(as_text=True)


def test_login_is_case_insensitive_and_logout_needs_post(app, client, auth):
    create_user(app)
    assert auth.login("ADA@example.com").status_code == 303
    assert client.get("/logout").status_code == 405
    assert auth.logout().status_code == 303
    assert client.get("/account").status_code == 302


def test_account_requires_login_and_comes_back_after(app, client, auth):
    create_user(app)
    response = client.get("/account")
    assert response.status_code == 302
    assert "/login?next=%2Faccount" in response.headers["Location"]
    response = auth.login(next="/account")
    assert response.headers["Location"] == "/account"


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "/\\evil.example",
        "https://evil.example/",
        "http:evil.example",
        "javascript:alert(1)",
        "data:text/html,hi",
        "/%5Cevil.example",
        "/%2F%2Fevil.example",
        "\\\\evil.example",
        "/\tevil",
        " //evil.example",
    ],
)
def test_next_only_goes_to_same_site_paths(app, auth, target):
    create_user(app)
    response = auth.login(next=target)
    assert response.status_code == 303
    assert response.headers["Location"] == "/account"


def test_session_cookie_is_httponly_and_samesite_lax(app, auth):
    response = auth.signup()
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("session="))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_chosen_plan_is_remembered_and_shown(client):
    html = client.get("/signup?plan=professional&cycle=yearly").get_data(as_text=True)
    assert "You are subscribing to <strong>Professional, yearly</strong>" in html
    assert 'name="plan" type="hidden" value="professional"' in html
    html = client.get("/login?plan=agency&cycle=monthly").get_data(as_text=True)
    assert "Agency, monthly" in html


def test_unknown_plan_in_signup_link_is_ignored(client):
    response = client.get("/signup?plan=gold&cycle=weekly")
    assert response.status_code == 200
    assert "You are subscribing" not in response.get_data(as_text=True)


def test_a_nul_byte_in_any_value_of_a_form_field_is_refused(app, client):
    token = csrf_token(client, "/signup")
    data = {
        "csrf_token": token,
        "email": ["ada@example.com", "second\x00value"],
        "password": "correct horse battery",
    }
    assert client.post("/signup", data=data).status_code == 400
    assert sql(app, "select count(*) from users") == [(0,)]
