"""The development mailbox: mail kept (no SMTP configured) is listed, opened and logged."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import make_app
from webapp.extensions import db
from webapp.models import OutgoingMail


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {}  # no SMTP: the embedded default, as under `make run`


def test_send_test_keeps_the_mail_logs_it_and_the_mailbox_lists_it(client, runner, caplog):
    with caplog.at_level(logging.INFO, logger="webapp.mail"):
        result = runner.invoke(args=["mail", "send-test", "--to", "Ada@Example.com"])
    assert result.exit_code == 0, result.output
    assert "queued a test message to Ada@example.com" in result.output
    # Delivered (kept) right after the commit, and printed to the log.
    logged = caplog.text
    assert "To: Ada@example.com" in logged
    assert "Subject: A test message from LLMGen" in logged
    assert "This is a test message from LLMGen" in logged

    page = client.get("/sandbox/mailbox/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "A test message from LLMGen" in html and "Ada@example.com" in html
    assert "kept" in html


def test_the_mailbox_lists_newest_first(client, runner):
    for address in ("first@example.com", "second@example.com"):
        runner.invoke(args=["mail", "send-test", "--to", address])
    html = client.get("/sandbox/mailbox/").get_data(as_text=True)
    assert html.index("second@example.com") < html.index("first@example.com")


def test_a_message_shows_its_text_and_its_html_in_a_sandboxed_frame(app, client, runner):
    runner.invoke(args=["mail", "send-test", "--to", "ada@example.com"])
    with app.app_context():
        mail_id = db.session.scalar(select(OutgoingMail.id))
    page = client.get(f"/sandbox/mailbox/{mail_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert '<iframe class="mail-frame"' in html and 'sandbox="allow-popups' in html
    assert f'src="/sandbox/mailbox/{mail_id}/html"' in html
    assert "Open your account: http://localhost/account" in html  # the text part

    frame = client.get(f"/sandbox/mailbox/{mail_id}/html")
    assert frame.status_code == 200
    assert 'href="http://localhost/account"' in frame.get_data(as_text=True)
    policy = frame.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "sandbox" in policy  # no scripts, no origin
    assert "frame-ancestors 'self'" in policy
    assert frame.headers["X-Frame-Options"] == "SAMEORIGIN"
    # The mailbox page itself keeps the site's policy.
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"


def test_an_unknown_message_is_a_404(client):
    assert client.get("/sandbox/mailbox/999").status_code == 404
    assert client.get("/sandbox/mailbox/999/html").status_code == 404


def test_the_mailbox_does_not_exist_with_real_stripe(database_url, _schema):
    # Like the sandbox's own pages: with a real Stripe key (always so in production) it is
    # not there at all.
    app = make_app(database_url, STRIPE_SECRET_KEY="sk_test_real", STRIPE_WEBHOOK_SECRET="whsec_x")
    try:
        client = app.test_client()
        for path in ("/sandbox/mailbox/", "/sandbox/mailbox/1", "/sandbox/mailbox/1/html"):
            assert client.get(path).status_code == 404
    finally:
        with app.app_context():
            db.engine.dispose()
