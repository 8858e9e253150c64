"""The low-balance mail end to end: a usage debit through POST /credits/usage crosses the
member's threshold, the outbox sends one message through a real SMTP server, with the one-click
unsubscribe of a non-essential mail and a link to buy credits or upgrade."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.api.conftest import bearer
from tests.conftest import create_user
from webapp.billing.credits import add_entry
from webapp.extensions import db
from webapp.mail import deliver_due

TOKEN = "service-token-for-the-low-balance-mail-012"
LINK = re.compile(r"https?://\S+")


@pytest.fixture
def config_overrides(smtp_server) -> dict[str, Any]:
    controller, _handler = smtp_server
    return {
        "MAIL_HOST": controller.hostname,
        "MAIL_PORT": controller.port,
        "MAIL_DELIVER_AFTER_COMMIT": False,
        "PUBLIC_BASE_URL": "https://llmgen.example",
        "CREDITS_SERVICE_TOKEN": TOKEN,
        "CREDITS_LOW_THRESHOLD": 100,
    }


def _use(client, user_id: int, amount: int, key: str):
    body = {"userId": user_id, "amount": amount, "description": "generation", "idempotencyKey": key}
    return client.post("/api/v1/credits/usage", json=body, headers=bearer(TOKEN))


def test_a_usage_debit_below_the_threshold_mails_once_through_smtp(app, client, smtp):
    user_id = create_user(app)
    with app.app_context():
        add_entry(user_id=user_id, amount=120, grant_key="plan", description="Plan credits")
        db.session.commit()
    assert _use(client, user_id, 30, "gen-1").status_code == 200  # 90: crossed below 100
    assert _use(client, user_id, 30, "gen-1").headers["Idempotent-Replayed"] == "true"
    assert _use(client, user_id, 10, "gen-2").status_code == 200  # 80: still below
    with app.app_context():
        assert len(deliver_due().sent) == 1
    [message] = smtp.received
    assert message["Subject"] == "Your credits are running low"
    assert message["To"] == "ada@example.com"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = message.get_body(("plain",)).get_content()
    assert "Your balance is 90 credits, below the 100" in text
    links = [urlsplit(url) for url in LINK.findall(text)]
    assert any(link.path == "/pricing" for link in links)
    assert any(link.path.startswith("/emails/unsubscribe/") for link in links)
