"""Deleting an account: Stripe first (the real SDK against the sandbox), then one transaction.

Every test goes through the real pages (CSRF on) and reads Stripe back through the SDK. Pages
are requested outside any app context of the test's own (a request inside one would share its
`g`, and so the logged-in user, with every other client).
"""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.api.conftest import bearer, issue_api_key, issue_token
from tests.billing.member import LIVE, Member
from tests.conftest import AuthActions, csrf_token, sql
from webapp.extensions import db
from webapp.models import User
from webapp.stripe_gateway import get_gateway

EMAIL = "ada@example.com"
PASSWORD = "correct horse battery"


def delete_form(client: FlaskClient, password: str = PASSWORD, confirm: bool = True):
    data = {"csrf_token": csrf_token(client, "/account/delete"), "password": password}
    if confirm:
        data["confirm"] = "y"
    return client.post("/account/delete", data=data)


def stripe_subscription(app: Flask, subscription_id: str):
    with app.app_context():
        return get_gateway().client.v1.subscriptions.retrieve(subscription_id)


def stripe_customer(app: Flask, customer_id: str):
    with app.app_context():
        return get_gateway().client.v1.customers.retrieve(customer_id)


def live_at_stripe(app: Flask, member: Member) -> list:
    with app.app_context():
        return [s for s in member.stripe_subscriptions() if s.status in LIVE]


def faults(app: Flask, *, fail_path: str | None = None) -> None:
    """Arm the sandbox to fail every call to `fail_path` (the SDK's retries included), or clear."""
    with app.app_context():
        switches = get_gateway().sandbox_instance.faults
        if fail_path:
            switches.set_api(10, path=fail_path)
        else:
            switches.clear()


def mail_rows(app: Flask) -> list[tuple]:
    """The outbox, less the receipt the member's checkout sent (billing mail, not deletion's)."""
    return sql(
        app,
        "select to_address, subject, status, text_body from outgoing_mail "
        "where kind is null or kind != 'receipt' order by id",
    )


def test_the_page_says_what_happens_before_anything_does(app, member):
    page = member.client.get("/account/delete")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "cancelled at Stripe at once" in html
    assert "not refunded" in html
    assert "Cancel at period end" in html  # the way to keep the period instead
    assert "Download my data" in html
    assert live_at_stripe(app, member)  # looking changed nothing


def test_deleting_cancels_at_stripe_at_once_and_anonymises_the_row(app, member):
    subscription = live_at_stripe(app, member)[0]
    customer_id = member.customer_id()
    key = issue_api_key(app, member.user_id)
    token = issue_token(app.test_client(), EMAIL)
    other_browser = app.test_client()
    AuthActions(app, other_browser).login()

    reply = delete_form(member.client)
    assert reply.status_code == 303
    assert reply.headers["Location"].endswith("/account/deleted")
    assert "Your account is deleted" in member.client.get("/account/deleted").get_data(True)

    # At Stripe: canceled now (not at the period end), without proration; the customer deleted.
    after = stripe_subscription(app, subscription.id)
    assert after.status == "canceled"
    assert (
        after.ended_at is not None
        and after.ended_at < subscription.items.data[0].current_period_end
    )
    assert after.cancellation_details.comment == "The customer deleted their account."
    assert getattr(stripe_customer(app, customer_id), "deleted", False) is True
    assert live_at_stripe(app, member) == []
    # Here: the subscription is canceled, and kept with its invoices and credits.
    assert sql(app, "select status from subscriptions where user_id = :id", id=member.user_id) == [
        ("canceled",)
    ]
    assert sql(app, "select count(*) from invoices where user_id = :id", id=member.user_id) == [
        (1,)
    ]
    assert sql(
        app, "select sum(amount) from credit_entries where user_id = :id", id=member.user_id
    ) == [(3000,)]

    # The row, anonymised.
    with app.app_context():
        user = db.session.get(User, member.user_id)
    assert user.email == f"deleted-{member.user_id}@deleted.invalid"
    assert user.deleted_at is not None and user.deactivated_at is not None
    assert user.email_verified_at is None and user.signup_attempted_at is None
    assert not user.check_password(PASSWORD) and not user.check_password("")

    # The old address: only in the one confirmation mail.
    assert sql(app, "select count(*) from users where email = :e", e=EMAIL) == [(0,)]
    to_old = [row for row in mail_rows(app) if EMAIL in " ".join(map(str, row))]
    assert len(to_old) == 1 and to_old[0][0] == EMAIL
    assert to_old[0][1] == "Your LLMGen account was deleted"
    assert "cancelled at once" in to_old[0][3]

    # Every credential ends: this browser, another one, the access token, the API key.
    assert member.client.get("/account").status_code == 302
    assert other_browser.get("/account").status_code == 302
    assert (
        app.test_client().get("/api/v1/credits/balance", headers=bearer(token)).status_code == 401
    )
    assert (
        app.test_client().get("/api/v1/credits/balance/api", headers=bearer(key)).status_code == 401
    )
    assert sql(
        app,
        "select count(*) from api_keys where user_id = :id and revoked_at is null",
        id=member.user_id,
    ) == [(0,)]

    # The old credentials get the ordinary answer; the address is free to sign up again.
    login = AuthActions(app, app.test_client()).login()
    assert login.status_code == 400
    assert "Incorrect email or password." in login.get_data(as_text=True)
    fresh = app.test_client()
    AuthActions(app, fresh).signup()
    assert sql(app, "select count(*) from users where email = :e", e=EMAIL) == [(1,)]
    assert fresh.get("/account").status_code == 200


@pytest.mark.parametrize(
    ("password", "confirm", "error"),
    [
        ("wrong password here", True, "That is not your current password."),
        (PASSWORD, False, "Tick the box"),
        ("", True, "Enter your password"),
    ],
)
def test_without_the_password_and_the_tick_nothing_happens(app, member, password, confirm, error):
    reply = delete_form(member.client, password, confirm)
    assert reply.status_code == 400
    assert error in reply.get_data(as_text=True)
    assert live_at_stripe(app, member)
    assert sql(app, "select email, deleted_at from users") == [(EMAIL, None)]
    assert mail_rows(app) == []


def test_a_deletion_without_a_plan_touches_no_stripe(app, user_id):
    client = app.test_client()
    AuthActions(app, client).login()
    page = client.get("/account/delete").get_data(as_text=True)
    assert "nothing to cancel" in page
    assert delete_form(client).status_code == 303
    assert sql(app, "select email from users") == [(f"deleted-{user_id}@deleted.invalid",)]


def test_when_stripe_fails_nothing_changes_and_a_retry_completes(app, member):
    subscription = live_at_stripe(app, member)[0]
    # Every attempt (the SDK retries twice) at the cancellation fails.
    faults(app, fail_path=f"/v1/subscriptions/{subscription.id}")
    reply = delete_form(member.client)
    assert reply.status_code == 502
    assert "Your account was not deleted" in reply.get_data(as_text=True)
    faults(app)
    assert stripe_subscription(app, subscription.id).status == "active"
    assert sql(app, "select email, deleted_at, deactivated_at from users") == [(EMAIL, None, None)]
    assert mail_rows(app) == []
    assert member.client.get("/account").status_code == 200  # still logged in

    assert delete_form(member.client).status_code == 303
    assert stripe_subscription(app, subscription.id).status == "canceled"
    assert sql(app, "select deleted_at is not null from users") == [(True,)]


def test_when_the_local_half_fails_a_retry_completes(app, member, monkeypatch):
    from sqlalchemy.exc import OperationalError

    import webapp.account.deletion as deletion

    subscription = live_at_stripe(app, member)[0]
    real = deletion.forget_recipient

    def fails_once(*args, **kwargs):
        monkeypatch.setattr(deletion, "forget_recipient", real)
        raise OperationalError("UPDATE outgoing_mail", {}, Exception("database went away"))

    monkeypatch.setattr(deletion, "forget_recipient", fails_once)
    reply = delete_form(member.client)
    assert reply.status_code == 503
    assert "did not finish" in reply.get_data(as_text=True)
    assert stripe_subscription(app, subscription.id).status == "canceled"  # Stripe's half is done
    assert sql(app, "select email, deleted_at from users") == [(EMAIL, None)]  # ours is not

    assert delete_form(member.client).status_code == 303
    assert sql(app, "select email from users") == [(f"deleted-{member.user_id}@deleted.invalid",)]
    assert len([row for row in mail_rows(app) if row[0] == EMAIL]) == 1


def test_pending_mail_to_the_old_address_is_dropped_and_sent_mail_anonymised(app, member):
    from webapp.mail import queue_mail

    with app.app_context():
        queue_mail(EMAIL, "test", "Already kept", dedupe_key="earlier")
        db.session.commit()
        app.config["MAIL_DELIVER_AFTER_COMMIT"] = False
        queue_mail(EMAIL, "test", "Not sent yet", dedupe_key="pending")
        queue_mail("someone@example.com", "test", "For someone else", dedupe_key="other")
        db.session.commit()
    assert delete_form(member.client).status_code == 303
    rows = {row[1]: row for row in mail_rows(app)}
    placeholder = f"deleted-{member.user_id}@deleted.invalid"
    assert rows["Already kept"][0] == placeholder and rows["Already kept"][3] == ""
    assert rows["Not sent yet"][:3] == (placeholder, "Not sent yet", "failed")
    assert rows["For someone else"][0] == "someone@example.com"
    assert rows["Your LLMGen account was deleted"][0] == EMAIL
    # Nothing is ever queued to a deleted account's placeholder.
    with app.app_context():
        assert queue_mail(placeholder, "test", "Late", dedupe_key="late") is False


def test_the_command_deletes_through_the_same_code(app, member, runner):
    subscription = live_at_stripe(app, member)[0]
    refused = runner.invoke(args=["users", "delete", "--email", EMAIL], input="n\n")
    assert refused.exit_code == 1 and stripe_subscription(app, subscription.id).status == "active"
    result = runner.invoke(args=["users", "delete", "--email", EMAIL], input="y\n")
    assert result.exit_code == 0, result.output
    assert subscription.id in result.output
    assert stripe_subscription(app, subscription.id).status == "canceled"
    assert sql(app, "select email from users") == [(f"deleted-{member.user_id}@deleted.invalid",)]
    again = runner.invoke(args=["users", "delete", "--email", EMAIL, "--yes"])
    assert again.exit_code == 1 and "no user with email" in again.output
