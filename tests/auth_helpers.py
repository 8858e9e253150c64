"""Helpers for the account-recovery tests: read the outbox, follow mailed links, use the forms."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import csrf_token, sql

NEW_PASSWORD = "purple elephant umbrella 42"


def mails_to(app: Flask, address: str) -> list[tuple[str, str]]:
    """(subject, text) of every message queued to `address`, oldest first."""
    rows = sql(
        app,
        "select subject, text_body from outgoing_mail where to_address = :to order by id",
        to=address,
    )
    return [(subject, text) for subject, text in rows]


def all_mail(app: Flask) -> list[tuple[str, str]]:
    return [tuple(row) for row in sql(app, "select to_address, subject from outgoing_mail")]


def link(text: str, path: str) -> str:
    """The path (on PUBLIC_BASE_URL) of the first link in `text` that starts with `path`."""
    match = re.search(r"https?://[^/\s]+(" + re.escape(path) + r"[^\s]*)", text)
    assert match, f"no {path} link in:\n{text}"
    return match.group(1)


def last_link(app: Flask, address: str, path: str) -> str:
    mails = mails_to(app, address)
    assert mails, f"no mail to {address}"
    return link(mails[-1][1], path)


def forgot(client: FlaskClient, email: str):
    token = csrf_token(client, "/password/forgot")
    return client.post("/password/forgot", data={"email": email, "csrf_token": token})


def reset(client: FlaskClient, path: str, password: str = NEW_PASSWORD):
    """Open a mailed reset link and submit a new password; returns the POST's answer."""
    opened = client.get(path)
    assert opened.status_code == 303 and opened.headers["Location"] == "/password/reset"
    page = client.get("/password/reset")
    if page.status_code != 200:
        return page
    token = csrf_token(client, "/password/reset")
    return client.post("/password/reset", data={"new_password": password, "csrf_token": token})


def post_form(client: FlaskClient, path: str, **data: str):
    return client.post(path, data={**data, "csrf_token": csrf_token(client, path)})
