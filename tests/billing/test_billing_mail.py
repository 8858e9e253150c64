"""Billing mail, one kind at a time: reminders, 3-D Secure, receipts, credits low, unsubscribing."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from tests.billing.member import Member
from tests.billing_helpers import post_event, sandbox_events
from tests.conftest import create_user, csrf_token
from tests.sandbox.helpers import THREE_DS_CARD, answer_challenge
from webapp.billing.credits import add_entry
from webapp.billing.emails import unsubscribe_token
from webapp.extensions import db
from webapp.models import MailStatus, OutgoingMail, Subscription, User
from webapp.stripe_gateway import get_gateway
from webapp.templating import format_date


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    # Kept, not delivered, so every queued row stays to be read; a fixed default threshold.
    return {"MAIL_DELIVER_AFTER_COMMIT": False, "CREDITS_LOW_THRESHOLD": 100}


def _mails(app, kind: str | None = None) -> list[OutgoingMail]:
    with app.app_context():
        query = select(OutgoingMail).order_by(OutgoingMail.id)
        if kind:
            query = query.where(OutgoingMail.kind == kind)
        return list(db.session.scalars(query))


def _event(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    """An event as Stripe shapes it (docs.stripe.com/api/events/object)."""
    return {
        "id": f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "type": kind,
        "created": 1_800_000_000,
        "data": {"object": obj},
    }


def _upcoming(sub_id: str, period_start: int, amount: int = 4990) -> dict[str, Any]:
    """`invoice.upcoming`: an invoice preview, with no id (docs.stripe.com/api/invoices/object,
    basil: the subscription under `parent.subscription_details`)."""
    return _event(
        "invoice.upcoming",
        {
            "object": "invoice",
            "id": None,
            "amount_due": amount,
            "currency": "usd",
            "parent": {
                "type": "subscription_details",
                "subscription_details": {"subscription": sub_id},
            },
            "lines": {
                "object": "list",
                "data": [
                    {
                        "object": "line_item",
                        "period": {"start": period_start, "end": period_start + 365 * 86400},
                        "parent": {"subscription_item_details": {"proration": False}},
                    }
                ],
            },
        },
    )


def _subscription(app) -> Subscription:
    with app.app_context():
        return db.session.scalar(select(Subscription))


def test_a_yearly_plan_gets_one_renewal_reminder_per_period(app):
    member = Member(app, create_user(app))
    member.subscribe("starter", "yearly")
    row = _subscription(app)
    renews = int(row.current_period_end.timestamp())
    reminder = _upcoming(row.stripe_subscription_id, renews)
    assert post_event(member.client, reminder).status_code == 200
    # Stripe sends one per period; a second one (another event id) about it adds nothing.
    again = dict(reminder, id=f"evt_{uuid.uuid4().hex[:24]}")
    assert post_event(member.client, again).status_code == 200
    # A preview of another period (a stale event) does not match what Stripe says now.
    stale = _upcoming(row.stripe_subscription_id, renews - 200 * 86400)
    assert post_event(member.client, stale).status_code == 200
    [mail] = _mails(app, "renewal_reminder")
    assert mail.subject == "Your yearly plan renews soon"
    assert format_date(row.current_period_end) in mail.text_body
    assert "$49.90" in mail.text_body and "http://localhost/account" in mail.text_body


def test_a_monthly_plan_or_one_set_to_end_gets_no_renewal_reminder(app):
    member = Member(app, create_user(app))
    member.subscribe("starter", "monthly")
    row = _subscription(app)
    event = _upcoming(row.stripe_subscription_id, int(row.current_period_end.timestamp()))
    assert post_event(member.client, event).status_code == 200
    assert _mails(app, "renewal_reminder") == []


def test_a_cancelled_yearly_plan_gets_no_renewal_reminder_only_the_cancellation(app):
    member = Member(app, create_user(app))
    member.subscribe("starter", "yearly")
    member.portal("cancel", reason="unused")
    row = _subscription(app)
    event = _upcoming(row.stripe_subscription_id, int(row.current_period_end.timestamp()))
    assert post_event(member.client, event).status_code == 200
    assert _mails(app, "renewal_reminder") == []
    [cancelled] = _mails(app, "cancellation_scheduled")
    assert format_date(row.ends_at) in cancelled.text_body


def _subscribe_with_3ds(member: Member, plan: str = "starter", cycle: str = "monthly") -> None:
    """Check out with the card that asks for 3-D Secure, and pass the bank's challenge."""
    started = member.client.post(
        "/checkout",
        data={"plan": plan, "cycle": cycle, "csrf_token": csrf_token(member.client, "/pricing")},
    )
    path = urlsplit(started.headers["Location"]).path
    card = {"card_number": THREE_DS_CARD, "expiry": "12 / 34", "cvc": "123"}
    paid = member.client.post(path, data={"csrf_token": csrf_token(member.client, path), **card})
    done = answer_challenge(member.client, paid.headers["Location"], "complete")
    assert done.status_code == 303 and "session_id=" in done.headers["Location"]
    assert member.client.get(done.headers["Location"]).status_code == 200  # fulfilled


def test_a_renewal_that_needs_3d_secure_mails_the_page_where_it_is_confirmed(app):
    member = Member(app, create_user(app))
    _subscribe_with_3ds(member)
    with app.app_context():
        member.advance(days=32)  # the renewal's charge asks the cardholder to authenticate
    [action] = sandbox_events(app, ("invoice.payment_action_required",))
    assert post_event(member.client, action).get_json()["message"] == "duplicate"
    [mail] = _mails(app, "payment_action_required")
    assert mail.dedupe_key == f"payment_action_required:{action['id']}"
    # Stripe also sends invoice.payment_failed for the attempt; the member gets one mail, the
    # one that says what to do (confirm with the bank), not "update your card" as well.
    [failed] = sandbox_events(app, ("invoice.payment_failed",))
    assert post_event(member.client, failed).get_json()["message"] == "duplicate"
    assert _mails(app, "payment_failed") == []
    assert mail.subject == "Confirm your payment" and "3-D Secure" in mail.text_body
    with app.app_context():
        invoice = get_gateway().retrieve_invoice(action["data"]["object"]["id"])
    assert invoice.hosted_invoice_url in mail.text_body
    assert f'href="{invoice.hosted_invoice_url}"' in mail.html_body

    # The link: the hosted invoice page, where the payment is confirmed with the bank.
    page = urlsplit(invoice.hosted_invoice_url).path
    started = member.client.post(
        f"{page}/authenticate", data={"csrf_token": csrf_token(member.client, page)}
    )
    done = answer_challenge(member.client, started.headers["Location"], "complete")
    assert urlsplit(done.headers["Location"]).path == page
    with app.app_context():
        assert get_gateway().retrieve_invoice(invoice.id).status == "paid"
        assert db.session.scalar(select(Subscription.status)) == "active"
    # A late copy of the event, about the invoice paid since, says nothing.
    late = dict(action, id=f"evt_{uuid.uuid4().hex[:24]}")
    assert post_event(member.client, late).status_code == 200
    assert len(_mails(app, "payment_action_required")) == 1


def test_the_sandboxs_upcoming_invoice_brings_one_yearly_renewal_reminder(app):
    member = Member(app, create_user(app))
    member.subscribe("starter", "yearly")
    renews = _subscription(app).current_period_end
    days = app.config["SANDBOX_UPCOMING_INVOICE_DAYS"]
    with app.app_context():
        member.advance(days=365 - days + 1)  # inside Stripe's "days before renewal" setting
    [upcoming] = sandbox_events(app, ("invoice.upcoming",))
    assert post_event(member.client, upcoming).get_json()["message"] == "duplicate"
    [mail] = _mails(app, "renewal_reminder")
    assert format_date(renews) in mail.text_body and "$49.90" in mail.text_body
    assert "http://localhost/account" in mail.text_body


@pytest.mark.parametrize("stripe_sends", [False, True])
def test_receipts_unless_stripe_sends_its_own(app, stripe_sends):
    app.config["STRIPE_SENDS_RECEIPTS"] = stripe_sends
    member = Member(app, create_user(app))
    member.subscribe("starter", "monthly")
    receipts = _mails(app, "receipt")
    if stripe_sends:
        assert receipts == []
        return
    [receipt] = receipts
    assert receipt.subject == "Your receipt for $4.99"
    with app.app_context():
        token = unsubscribe_token(member.user_id, "receipt")
    assert receipt.headers == {
        "List-Unsubscribe": f"<http://localhost/emails/unsubscribe/{token}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert f"http://localhost/emails/unsubscribe/{token}" in receipt.text_body


def _ledger(app, user_id: int, amount: int) -> None:
    """A ledger write (as usage or a refund's take-back would), committed on its own."""
    with app.app_context():
        add_entry(
            user_id=user_id,
            amount=amount,
            grant_key=f"test:{uuid.uuid4()}",
            description="test",
        )
        db.session.commit()


def test_credits_low_is_sent_once_per_crossing_and_re_armed_above_the_threshold(app):
    user_id = create_user(app)
    _ledger(app, user_id, 500)
    _ledger(app, user_id, 300)  # a grant: never "low", however low
    _ledger(app, user_id, -750)  # 50: crossed below 100
    _ledger(app, user_id, -10)  # still below: already told
    assert [m.subject for m in _mails(app)] == ["Your credits are running low"]
    assert "50" in _mails(app)[0].text_body
    _ledger(app, user_id, 60)  # 100: at the threshold again, re-armed
    _ledger(app, user_id, -1)  # 99: a new crossing
    assert len(_mails(app, "credits_low")) == 2


def test_credits_low_follows_the_members_own_threshold_and_preferences(app):
    user_id = create_user(app)
    _ledger(app, user_id, 1000)
    with app.app_context():
        user = db.session.get(User, user_id)
        user.credits_low_threshold = 900
        user.wants_credits_low_mail = False
        db.session.commit()
    _ledger(app, user_id, -200)  # 800 < 900, but they do not want it
    assert _mails(app) == []
    with app.app_context():
        user = db.session.get(User, user_id)
        assert user.credits_low_notified  # this crossing counted: no mail on opting back in
        user.wants_credits_low_mail, user.credits_low_threshold = True, 0  # 0: never
        db.session.commit()
    _ledger(app, user_id, 300)
    _ledger(app, user_id, -1000)
    assert _mails(app) == []


def test_a_deleted_account_gets_no_billing_mail(app):
    user_id = create_user(app)
    _ledger(app, user_id, 500)
    with app.app_context():
        from webapp.models.base import utcnow

        db.session.get(User, user_id).deleted_at = utcnow()
        db.session.commit()
    _ledger(app, user_id, -450)
    assert _mails(app) == []


def test_one_click_unsubscribe_stops_the_kind_at_once_pending_mail_included(app, client):
    user_id = create_user(app)
    _ledger(app, user_id, 500)
    _ledger(app, user_id, -450)
    [pending] = _mails(app, "credits_low")
    assert pending.status == MailStatus.PENDING
    with app.app_context():
        path = f"/emails/unsubscribe/{unsubscribe_token(user_id, 'credits_low')}"
    asked = client.get(path)  # a link scanner's fetch changes nothing
    assert asked.status_code == 200 and "Stop mailing you credits-low warnings?" in asked.text
    assert _mails(app, "credits_low")[0].status == MailStatus.PENDING
    # RFC 8058: the mail client posts List-Unsubscribe=One-Click, without any CSRF token.
    done = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and 'data-testid="unsubscribed"' in done.text
    assert _mails(app, "credits_low")[0].status == MailStatus.CANCELED
    with app.app_context():
        user = db.session.get(User, user_id)
        assert not user.wants_credits_low_mail and user.wants_receipt_mail


@pytest.mark.parametrize(
    "token",
    ["nonsense", "WzEsInJlY2VpcHQiXQ", "WzEsInJlY2VpcHQiXQ.forged-signature"],
)
def test_a_bad_unsubscribe_link_is_a_clear_404(app, client, token):
    create_user(app)
    reply = client.post(f"/emails/unsubscribe/{token}")
    assert reply.status_code == 404 and 'data-testid="unsubscribe-invalid"' in reply.text


def test_the_preferences_page_saves_and_refuses_bad_input_with_a_400(app, client, auth):
    user_id = create_user(app)
    auth.login()
    page = client.get("/account")
    assert 'href="/account/notifications"' in page.text
    form = client.get("/account/notifications")
    assert form.status_code == 200 and 'value="100"' in form.text
    token = csrf_token(client, "/account/notifications")
    bad_data = {"csrf_token": token, "credits_low_threshold": "-5"}
    bad = client.post("/account/notifications", data=bad_data)
    assert bad.status_code == 400 and "Enter a whole number" in bad.text
    saved = client.post(
        "/account/notifications",
        data={"csrf_token": token, "credits_low_threshold": "250", "wants_receipt_mail": "y"},
    )
    assert saved.status_code == 303
    with app.app_context():
        user = db.session.get(User, user_id)
        assert user.credits_low_threshold == 250
        assert user.wants_receipt_mail and not user.wants_credits_low_mail


def test_update_card_without_a_billing_account_goes_back_to_the_account_page(app, client, auth):
    create_user(app)
    auth.login()
    reply = client.get("/billing/update-card")
    assert reply.status_code == 303 and reply.headers["Location"].endswith("/account")


def test_update_card_opens_the_portal(app):
    member = Member(app, create_user(app))
    member.subscribe("starter", "monthly")
    reply = member.client.get("/billing/update-card")
    assert reply.status_code == 303
    with app.app_context():
        portal_path = reply.headers["Location"].split("/sandbox/portal/")[1]
        assert get_gateway().client.v1.billing_portal.sessions  # the sandbox made the session
    assert member.client.get(f"/sandbox/portal/{portal_path}").status_code == 200


def test_a_reminder_that_arrives_after_the_renewal_sends_nothing(app):
    """Late: the period it previews has begun, so our re-read subscription renews a year later;
    a reminder now would be a year early (and would use up next year's)."""
    member = Member(app, create_user(app))
    member.subscribe("starter", "yearly")
    renewed_at = int(_subscription(app).current_period_end.timestamp())
    with app.app_context():
        member.advance(days=367)
    row = _subscription(app)
    assert int(row.current_period_start.timestamp()) == renewed_at
    late = _upcoming(row.stripe_subscription_id, renewed_at)
    assert post_event(member.client, late).status_code == 200
    assert _mails(app, "renewal_reminder") == []
