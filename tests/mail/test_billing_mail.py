"""Billing mail end to end: the sandbox's real renewal, its webhooks, a real SMTP server."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from tests.billing.member import Member
from tests.billing_helpers import post_event, sandbox_events
from tests.conftest import create_user, csrf_token
from tests.mail.test_delivery import _time_passes
from webapp.billing import replay_event
from webapp.extensions import db
from webapp.mail import deliver_due
from webapp.mail.delivery import BACKOFF
from webapp.models import MailStatus, OutgoingMail, Subscription
from webapp.stripe_gateway import get_gateway
from webapp.templating import format_date

LINK = re.compile(r"https?://\S+")


@pytest.fixture
def config_overrides(smtp_server) -> dict[str, Any]:
    """Mail through the local SMTP server, sent only when the test runs the worker; the public
    URL is the test client's own, so the mail's link can be followed."""
    controller, _handler = smtp_server
    return {
        "MAIL_HOST": controller.hostname,
        "MAIL_PORT": controller.port,
        "MAIL_DELIVER_AFTER_COMMIT": False,
    }


def _deliver(app) -> Any:
    with app.app_context():
        return deliver_due()


def _subjects(smtp) -> list[str]:
    return [str(message["Subject"]) for message in smtp.received]


def test_a_failed_renewal_mails_once_through_refusals_and_redeliveries_and_its_link_fixes_the_card(
    app, smtp
):
    member = Member(app, create_user(app))
    member.subscribe("starter", "monthly", card="fails_at_renewal")
    assert len(_deliver(app).sent) == 1  # the first invoice's receipt
    assert _subjects(smtp) == ["Your receipt for $4.99"]
    smtp.received.clear()

    # The renewal fails: the sandbox delivers invoice.payment_failed to our webhook once…
    with app.app_context():
        member.advance(days=31)
    [failed] = sandbox_events(app, ("invoice.payment_failed",))
    # …and Stripe, delivering at least once, sends it twice more.
    for _ in range(2):
        reply = post_event(member.client, failed)
        assert reply.status_code == 200 and reply.get_json()["message"] == "duplicate"

    with app.app_context():
        failed_mail = select(OutgoingMail).where(OutgoingMail.kind == "payment_failed")
        mails = db.session.scalars(failed_mail)
        [queued] = mails.all()
        assert queued.dedupe_key == f"payment_failed:{failed['id']}"
        subscription = db.session.scalar(select(Subscription))
        assert subscription.status == "past_due"
        grace_ends = subscription.past_due_since + timedelta(days=app.config["PAST_DUE_GRACE_DAYS"])

    # The SMTP server refuses the first attempt; the worker retries after the backoff.
    smtp.refusals = 1
    assert _deliver(app).retrying == [queued.id]
    assert _deliver(app).handled == 0  # not due yet
    _time_passes(app, BACKOFF[0])
    assert _deliver(app).sent == [queued.id]
    _time_passes(app, timedelta(days=2))
    assert _deliver(app).handled == 0

    [message] = smtp.received
    assert message["Subject"] == "Your payment failed: please update your card"
    assert message["To"] == "ada@example.com"
    assert "List-Unsubscribe" not in message  # essential: always sent
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "payment of $4.99 for your Starter plan" in text
    assert format_date(grace_ends) in text and format_date(grace_ends) in html
    # The link is the invoice's hosted page, where a card pays it.
    [link] = [url for url in LINK.findall(text) if "/pricing" not in url]
    with app.app_context():
        renewal = get_gateway().retrieve_invoice(failed["data"]["object"]["id"])
    assert link == renewal.hosted_invoice_url and urlsplit(link).path.startswith("/sandbox/i/")
    assert f'href="{link}"' in html

    # Replaying the event from the ledger (`flask webhooks replay`) queues nothing new either.
    with app.app_context():
        assert replay_event(failed["id"]).status == "processed"
        kinds = list(db.session.scalars(select(OutgoingMail.kind).order_by(OutgoingMail.id)))
    assert kinds == ["receipt", "payment_failed"]

    # The link opens the page that takes a new card and pays the open invoice.
    page_path = urlsplit(link).path
    card = {"card_number": "4242 4242 4242 4242", "expiry": "12 / 34", "cvc": "123"}
    paid = member.client.post(
        page_path, data={"csrf_token": csrf_token(member.client, page_path), **card}
    )
    assert paid.status_code == 303, paid.get_data(as_text=True)[:300]
    with app.app_context():
        assert member.live().status == "active"
        invoices = get_gateway().client.v1.invoices.list(params={"customer": member.customer_id()})
        assert {invoice.status for invoice in invoices.data} == {"paid"}
        assert db.session.scalar(select(Subscription.status)) == "active"
        sent = db.session.get(OutgoingMail, queued.id)
        assert (sent.status, sent.attempts, sent.last_error) == (MailStatus.SENT, 2, None)


def test_the_update_card_link_asks_a_logged_out_reader_to_log_in_first(app, client):
    reply = client.get("/billing/update-card")
    assert reply.status_code == 302
    location = reply.headers["Location"]
    assert urlsplit(location).path == "/login" and "next=%2Fbilling%2Fupdate-card" in location
