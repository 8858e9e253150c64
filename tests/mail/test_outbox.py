"""Queueing mail: in the caller's transaction, once per cause, rendered in two parts."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from webapp.extensions import db
from webapp.mail import deliver_due, queue_mail
from webapp.models import OutgoingMail


def _outbox_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(OutgoingMail))


def test_a_rolled_back_transaction_leaves_no_mail(app, smtp):
    with app.app_context():
        assert queue_mail("ada@example.com", "test", "Hello", "cause:1")
        db.session.rollback()
        assert deliver_due().handled == 0
    assert _outbox_count(app) == 0
    assert smtp.received == []


def test_the_same_cause_queues_one_message(app, smtp):
    with app.app_context():
        assert queue_mail("ada@example.com", "test", "Hello", "evt_1:payment_failed")
        db.session.commit()
        # A retried webhook delivery queues the same cause again: nothing new.
        assert not queue_mail("ada@example.com", "test", "Hello", "evt_1:payment_failed")
        db.session.commit()
        deliver_due()
    assert _outbox_count(app) == 1
    assert len(smtp.received) == 1


def test_mail_has_text_and_html_parts_with_absolute_links_on_the_public_url(app, smtp):
    with app.app_context():
        queue_mail("ada@example.com", "test", "Mail works", "cause:parts")
        db.session.commit()
        assert len(deliver_due().sent) == 1
    [message] = smtp.received
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "Mail works"
    assert message["From"] == app.config["MAIL_FROM"]
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "https://llmgen.example/account" in text
    assert 'href="https://llmgen.example/account"' in html
    assert 'href="/' not in html
    assert "<link" not in html  # no external style sheet: mail clients drop them
    assert 'style="' in html


def test_mail_queued_inside_a_request_links_to_the_public_url_too(app):
    # A request on another Host header (the test client's "localhost") still gets public links.
    with app.test_request_context("/", base_url="http://evil.example"):
        queue_mail("ada@example.com", "test", "Mail works", "cause:request")
        db.session.commit()
        mail = db.session.scalar(select(OutgoingMail))
    assert "https://llmgen.example/account" in mail.html_body
    assert "evil.example" not in mail.html_body


@pytest.mark.parametrize("address", ["not-an-address", "a@b@c"])
def test_send_test_refuses_a_bad_address(runner, address):
    result = runner.invoke(args=["mail", "send-test", "--to", address])
    assert result.exit_code == 2
    assert "--to" in result.output
