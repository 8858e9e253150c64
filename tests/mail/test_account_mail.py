"""Account-recovery mail through a real SMTP server: both parts, absolute links that work."""

from __future__ import annotations

import re

from tests.auth_helpers import NEW_PASSWORD, forgot
from tests.conftest import AuthActions, create_user, csrf_token
from webapp.extensions import db
from webapp.mail import deliver_due


def test_a_reset_mail_arrives_with_both_parts_and_its_link_resets_the_password(app, smtp):
    create_user(app, "ada@example.com")
    client = app.test_client()
    forgot(client, "ada@example.com")
    with app.app_context():
        assert len(deliver_due().sent) == 1
        db.session.remove()
    [message] = smtp.received
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "Reset your LLMGen password"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    # Links are absolute on PUBLIC_BASE_URL, never the request's host.
    [url] = re.findall(r"https://llmgen\.example/password/reset/\S+", text)
    assert f'href="{url}"' in html
    path = url.removeprefix("https://llmgen.example")
    assert client.get(path).headers["Location"] == "/password/reset"
    token = csrf_token(client, "/password/reset")
    response = client.post(
        "/password/reset", data={"new_password": NEW_PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 303
    with app.app_context():
        assert len(deliver_due().sent) == 1  # "your password was changed"
    assert smtp.received[-1]["Subject"] == "Your LLMGen password was changed"
    assert AuthActions(app, app.test_client()).login(password=NEW_PASSWORD).status_code == 303


def test_the_verification_mail_of_a_sign_up_arrives(app, smtp, auth):
    auth.signup("grace@example.com")
    with app.app_context():
        deliver_due()
    [message] = smtp.received
    assert message["To"] == "grace@example.com"
    text = message.get_body(("plain",)).get_content()
    assert re.search(r"https://llmgen\.example/verify-email/\S+", text)
