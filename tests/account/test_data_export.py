"""Download my data: /account/data.json, for a member who subscribed, made keys and got mail."""

from __future__ import annotations

import json
import re

from tests.api.conftest import issue_api_key
from tests.conftest import sql

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def dates(value, key=""):
    """Every (key, value) in the document whose key names a moment."""
    if isinstance(value, dict):
        for name, inner in value.items():
            yield from dates(inner, name)
    elif isinstance(value, list):
        for inner in value:
            yield from dates(inner, key)
    elif key.endswith("At") or key in ("currentPeriodStart", "currentPeriodEnd"):
        yield key, value


def test_the_download_holds_everything_and_no_secret(app, member):
    secret = issue_api_key(app, member.user_id, "my integration")
    reply = member.client.get("/account/data.json")
    assert reply.status_code == 200
    assert reply.mimetype == "application/json"
    assert reply.headers["Content-Disposition"].startswith("attachment;")
    assert reply.headers["Cache-Control"] == "no-store"
    data = json.loads(reply.get_data(as_text=True))

    assert data["version"] == 2
    assert data["profile"] == {
        "email": "ada@example.com",
        "createdAt": data["profile"]["createdAt"],
        "verified": True,  # an established account (tests.conftest.create_user)
        "emailVerifiedAt": data["profile"]["emailVerifiedAt"],
        "role": "user",
    }
    [subscription] = data["subscriptions"]
    assert subscription["plan"] == "professional" and subscription["status"] == "active"
    assert subscription["id"].startswith("sub_")
    [invoice] = data["invoices"]
    assert invoice["status"] == "paid" and invoice["amountPaidCents"] == 1299
    assert invoice["currency"] == "usd" and "hostedInvoiceUrl" in invoice
    assert data["credits"]["balance"] == 3000
    assert [entry["amount"] for entry in data["credits"]["entries"]] == [3000]
    [key] = data["apiKeys"]
    assert key["name"] == "my integration" and secret.startswith(key["prefix"])
    assert set(key) == {
        "id",
        "name",
        "description",
        "prefix",
        "scopes",
        "expiresAt",
        "createdAt",
        "lastUsedAt",
        "revokedAt",
    }
    assert key["id"].startswith("key_") and key["scopes"] == ["full"]
    assert isinstance(data["mail"], list)

    text = reply.get_data(as_text=True)
    [(key_hash,)] = sql(app, "select key_hash from api_keys")
    assert secret not in text and key_hash not in text
    assert "password" not in text
    moments = list(dates(data))
    assert moments and all(value is None or ISO_UTC.match(value) for _, value in moments)


def test_the_mail_we_sent_is_listed(app, member):
    from webapp.extensions import db
    from webapp.mail import queue_mail

    with app.app_context():
        queue_mail("ada@example.com", "test", "Mail works", dedupe_key="sample")
        queue_mail("bob@example.com", "test", "Not yours", dedupe_key="other")
        db.session.commit()
    data = member.client.get("/account/data.json").get_json()
    subjects = [mail["subject"] for mail in data["mail"]]
    # Theirs (the checkout's receipt among them), never someone else's.
    assert "Mail works" in subjects and "Not yours" not in subjects
    assert all(ISO_UTC.match(mail["createdAt"]) for mail in data["mail"])


def test_the_account_page_links_both_and_strangers_get_nothing(app, member, client):
    page = member.client.get("/account").get_data(as_text=True)
    assert 'href="/account/data.json"' in page and 'href="/account/delete"' in page
    assert client.get("/account/data.json").status_code == 302
    assert client.get("/account/delete").status_code == 302
