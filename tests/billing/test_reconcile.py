"""Reconciliation: an event Stripe holds but never delivered is found and applied, once.

The sandbox's "lost" fault makes a renewal's events reach no endpoint (as when Stripe gave up
retrying); the reconciliation job walks `GET /v1/events` and puts them through the ledger as a
webhook would. Running it again, or the event arriving late after all, applies nothing more.
"""

from __future__ import annotations

from sqlalchemy import func, select

from tests.billing.member import Member
from tests.billing_helpers import post_event, sandbox_events
from tests.conftest import create_user
from webapp.billing import reconcile
from webapp.extensions import db
from webapp.jobs.scheduled import reconcile_events, resync_subscriptions
from webapp.models import CreditEntry, Subscription, WebhookEvent


def ledger(event_id: str) -> list[str]:
    return list(db.session.scalars(select(WebhookEvent.status).where(WebhookEvent.id == event_id)))


def grants_of(invoice_id: str) -> int:
    return db.session.scalar(
        select(func.count()).where(CreditEntry.invoice_id == invoice_id, CreditEntry.amount > 0)
    )


def test_a_renewal_whose_events_never_came_is_found_and_applied_once(app, user_id):
    with app.app_context():
        member = Member(app, user_id)
        member.subscribe("professional", "monthly")
        first = member.balance()  # one month of Professional
        assert first > 0
        app.extensions["stripe_sandbox"].faults.set_webhooks("lost")
        member.advance(31)  # the renewal: paid at Stripe, its events lost on the way
        # Someone else's checkout after it is delivered: the newest event we hold is now
        # newer than the lost ones.
        other = create_user(app, email="bob@example.com")
        with app.app_context():  # its own `g`, where Flask-WTF keeps a client's CSRF token
            Member(app, other, email="bob@example.com").subscribe("starter", "monthly")
        [renewal] = [
            e
            for e in sandbox_events(app, ("invoice.paid",))
            if e["data"]["object"]["billing_reason"] == "subscription_cycle"
        ]
        assert ledger(renewal["id"]) == []
        assert member.balance() == first  # the renewal's credits never came

        summary = reconcile_events()

        assert ledger(renewal["id"]) == ["processed"]
        assert member.balance() == 2 * first
        assert "missed and applied" in summary
        invoice_id = renewal["data"]["object"]["id"]
        assert grants_of(invoice_id) == 1
        # Again: nothing left to apply. Then the lost delivery arrives after all: a duplicate.
        again = reconcile.reconcile_events()
        assert again.applied == [] and again.failed == []
        assert post_event(member.client, renewal).get_json()["message"] == "duplicate"
        assert ledger(renewal["id"]) == ["processed"]
        assert grants_of(invoice_id) == 1
        assert member.balance() == 2 * first


def test_events_we_hold_are_never_applied_again(app, user_id):
    with app.app_context():
        member = Member(app, user_id)
        member.subscribe("business", "yearly")
        held = db.session.scalar(select(func.count()).select_from(WebhookEvent))
        balance = member.balance()
        run = reconcile.reconcile_events()
        assert run.seen > 0 and run.applied == [] and run.failed == []
        assert db.session.scalar(select(func.count()).select_from(WebhookEvent)) == held
        assert member.balance() == balance


def test_resync_reads_every_live_subscription_afresh(app, user_id):
    with app.app_context():
        member = Member(app, user_id)
        member.subscribe("professional", "monthly")
        row = db.session.scalar(select(Subscription))
        # Our copy drifted (an event lost beyond Stripe's 30 days): the re-sync puts it right.
        row.cancel_at_period_end = True
        db.session.commit()
        assert "1 live subscriptions re-read, 0 failed" in resync_subscriptions()
        db.session.expire_all()
        assert db.session.scalar(select(Subscription)).cancel_at_period_end is False
