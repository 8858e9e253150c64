"""`flask users`: create, reset-password, set-role, list and deactivate (issue 14, item 2).

Passwords come from stdin here (the runner's stdin is not a terminal), as they would in a script.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import update

from tests.api.conftest import PASSWORD, bearer, issue_api_key, issue_token
from tests.conftest import AuthActions, create_user, sql
from webapp.extensions import db
from webapp.models import Subscription, User

NEW_PASSWORD = "a brand new passphrase"


def users(runner, *args: str, password: str | None = None):
    return runner.invoke(args=["users", *args], input=None if password is None else password + "\n")


def account_status(client) -> int:
    return client.get("/account").status_code


# --- create -----------------------------------------------------------------------------------


def test_users_create_makes_a_user_with_a_role(app, runner):
    args = ["create", "--email", "Mia@Example.com", "--role", "marketing"]
    result = users(runner, *args, password="long enough pw")
    assert result.exit_code == 0, result.output
    assert "created user" in result.output
    assert sql(app, "select email, role from users") == [("mia@example.com", "marketing")]
    # An operator vouches for the address: the account is verified (it may create API keys).
    assert sql(app, "select count(*) from users where email_verified_at is not null") == [(1,)]
    assert (
        AuthActions(app, app.test_client()).login("mia@example.com", "long enough pw").status_code
        == 303
    )


def test_users_create_refuses_duplicates_and_bad_roles(app, runner):
    args = ["create", "--email", "a@example.com"]
    assert users(runner, *args, password="long enough pw").exit_code == 0
    duplicate = users(runner, *args, password="long enough pw")
    assert duplicate.exit_code != 0 and "already exists" in duplicate.output
    bad_role = users(runner, *args, "--role", "god", password="long enough pw")
    assert bad_role.exit_code != 0
    assert sql(app, "select count(*) from users") == [(1,)]


@pytest.mark.parametrize(
    "command",
    [["create", "--email", "a@example.com"], ["reset-password", "--email", "ada@example.com"]],
)
def test_a_password_is_never_taken_from_the_command_line(app, runner, command):
    create_user(app)
    result = users(runner, *command, "--password", "long enough pw", password="long enough pw")
    assert result.exit_code == 2
    assert "--password is not accepted" in result.output and "shell history" in result.output
    assert sql(app, "select count(*) from users") == [(1,)]
    # Nothing changed: the old password still logs in.
    assert AuthActions(app, app.test_client()).login().status_code == 303


@pytest.mark.parametrize(
    ("stdin", "message"),
    [("", "no password given"), ("short", "Use 10 to 128"), ("1234567890", "too easy to guess")],
)
def test_create_holds_the_password_to_the_sign_up_rules(app, runner, stdin, message):
    result = users(runner, "create", "--email", "a@example.com", password=stdin)
    assert result.exit_code == 1 and message in result.output, result.output
    assert sql(app, "select count(*) from users") == [(0,)]


def test_create_reads_only_the_first_line_of_stdin(app, runner):
    result = runner.invoke(
        args=["users", "create", "--email", "a@example.com"], input="long enough pw\r\nignored\n"
    )
    assert result.exit_code == 0, result.output
    assert (
        AuthActions(app, app.test_client()).login("a@example.com", "long enough pw").status_code
        == 303
    )


# --- reset-password ---------------------------------------------------------------------------


def test_reset_password_ends_sessions_and_access_tokens(app, client, auth, runner):
    create_user(app)
    auth.login()
    token = issue_token(client)
    assert account_status(client) == 200
    result = users(runner, "reset-password", "--email", "ADA@example.com", password=NEW_PASSWORD)
    assert result.exit_code == 0, result.output
    assert "sessions were ended" in result.output
    assert account_status(client) == 302
    assert client.get("/api/v1/credits/balance", headers=bearer(token)).status_code == 401
    assert AuthActions(app, app.test_client()).login(password=PASSWORD).status_code == 400
    assert AuthActions(app, app.test_client()).login(password=NEW_PASSWORD).status_code == 303


def test_reset_password_refuses_unknown_users_and_weak_passwords(app, runner):
    create_user(app)
    unknown = users(runner, "reset-password", "--email", "bob@example.com", password=NEW_PASSWORD)
    assert unknown.exit_code == 1 and "no user with email bob@example.com" in unknown.output
    weak = users(runner, "reset-password", "--email", "ada@example.com", password="ada@example.com")
    assert weak.exit_code == 1 and "too easy to guess" in weak.output
    assert sql(app, "select session_version from users") == [(0,)]


# --- set-role ---------------------------------------------------------------------------------


def test_lowering_a_role_ends_admin_access_at_once(app, client, auth, runner):
    create_user(app, role="admin")
    auth.login()
    assert client.get("/admin/plans").status_code == 200
    result = users(runner, "set-role", "--email", "ada@example.com", "--role", "user")
    assert result.exit_code == 0 and "admin -> user" in result.output, result.output
    assert client.get("/admin/plans").status_code == 302  # logged out, not just refused
    auth.login()
    assert client.get("/admin/plans").status_code == 403
    assert sql(app, "select role from users") == [("user",)]


def test_raising_a_role_keeps_sessions_and_grants_access(app, client, auth, runner):
    create_user(app)
    auth.login()
    assert client.get("/admin/plans").status_code == 403
    result = users(runner, "set-role", "--email", "ada@example.com", "--role", "marketing")
    assert result.exit_code == 0 and "sessions" not in result.output, result.output
    assert client.get("/admin/plans").status_code == 200
    assert users(runner, "set-role", "--email", "ada@example.com", "--role", "root").exit_code == 2


# --- list -------------------------------------------------------------------------------------


def test_list_shows_roles_states_and_subscriptions(app, runner):
    ada = create_user(app, verified=False)
    create_user(app, email="bob@example.com", role="admin")
    with app.app_context():
        db.session.add(
            Subscription(
                user_id=ada,
                stripe_subscription_id="sub_1",
                stripe_customer_id="cus_1",
                stripe_price_id="price_1",
                plan_id="professional",
                cycle="monthly",
                status="active",
            )
        )
        db.session.commit()
    assert users(runner, "deactivate", "--email", "bob@example.com").exit_code == 0

    table = users(runner, "list")
    assert table.exit_code == 0, table.output
    header, first, second = table.output.splitlines()
    assert header.split() == [
        "id", "email", "role", "created", "verified", "deactivated", "plan", "status"
    ]  # fmt: skip
    assert "ada@example.com" in first and "professional/monthly" in first and "active" in first
    assert "bob@example.com" in second and "admin" in second

    rows = json.loads(users(runner, "list", "--json").output)
    assert [(row["email"], row["plan"], row["status"]) for row in rows] == [
        ("ada@example.com", "professional/monthly", "active"),
        ("bob@example.com", None, None),
    ]
    assert rows[0]["deactivated"] is None and rows[1]["deactivated"] is not None
    assert rows[0]["verified"] is None

    admins = json.loads(users(runner, "list", "--role", "admin", "--json").output)
    assert [row["email"] for row in admins] == ["bob@example.com"]
    assert users(runner, "list", "--role", "marketing").output.strip() == "no users"


# --- deactivate -------------------------------------------------------------------------------


def test_a_deactivated_user_loses_sessions_tokens_and_api_keys(app, client, auth, runner):
    user_id = create_user(app)
    auth.login()
    token = issue_token(client)
    key = issue_api_key(app, user_id)
    assert client.get("/api/v1/credits/balance/api", headers=bearer(key)).status_code == 200

    result = users(runner, "deactivate", "--email", "ada@example.com")
    assert result.exit_code == 0, result.output
    assert "1 API key revoked" in result.output and "subscription is left" in result.output

    assert account_status(client) == 302
    assert client.get("/api/v1/credits/balance", headers=bearer(token)).status_code == 401
    assert client.get("/api/v1/credits/balance/api", headers=bearer(key)).status_code == 401
    assert sql(app, "select count(*) from api_keys where revoked_at is null") == [(0,)]


def test_a_deactivated_user_cannot_log_in_and_only_the_owner_learns_why(app, client, runner):
    create_user(app)
    assert users(runner, "deactivate", "--email", "ada@example.com").exit_code == 0

    right = AuthActions(app, app.test_client()).login()
    assert right.status_code == 400 and "deactivated" in right.get_data(as_text=True)
    wrong = AuthActions(app, app.test_client()).login(password="not the password at all")
    assert wrong.status_code == 400
    assert "deactivated" not in wrong.get_data(as_text=True)
    assert "Incorrect email or password." in wrong.get_data(as_text=True)

    refused = client.post(
        "/api/v1/auth/token", json={"email": "ada@example.com", "password": PASSWORD}
    )
    assert refused.status_code == 401 and refused.json["error"]["code"] == "unauthorized"
    assert "deactivated" in refused.json["error"]["message"]
    guessed = client.post(
        "/api/v1/auth/token", json={"email": "ada@example.com", "password": "x" * 12}
    )
    assert guessed.status_code == 401 and "deactivated" not in guessed.json["error"]["message"]


def test_a_token_issued_just_before_deactivation_is_refused(app, client, runner):
    """The check is on the account, not only the session version."""
    create_user(app)
    token = issue_token(client)
    assert users(runner, "deactivate", "--email", "ada@example.com").exit_code == 0
    with app.app_context():  # as if the session-version bump had been lost
        db.session.execute(update(User).values(session_version=0))
        db.session.commit()
    assert client.get("/api/v1/credits/balance", headers=bearer(token)).status_code == 401


def test_reactivating_lets_the_user_log_in_but_keys_stay_revoked(app, client, runner):
    user_id = create_user(app)
    key = issue_api_key(app, user_id)
    assert users(runner, "deactivate", "--email", "ada@example.com").exit_code == 0
    again = users(runner, "deactivate", "--email", "ada@example.com")
    assert again.exit_code == 0 and "0 API keys revoked" in again.output
    result = users(runner, "deactivate", "--email", "ada@example.com", "--reactivate")
    assert result.exit_code == 0 and "reactivated" in result.output, result.output
    assert AuthActions(app, client).login().status_code == 303
    assert account_status(client) == 200
    assert client.get("/api/v1/credits/balance/api", headers=bearer(key)).status_code == 401
    assert sql(app, "select deactivated_at from users") == [(None,)]
