"""Pages a CDN may serve (issue 17, item 3): anonymous pricing and legal pages are public, carry
an ETag that moves with a publish, answer If-None-Match with 304 without rendering, and neither
set nor vary on cookies; anyone with a session cookie gets the private variant."""

from __future__ import annotations

import gzip
import re

import pytest
from flask import Response, session, template_rendered

from tests.conftest import AuthActions, create_user
from tests.test_plan_copy import publish, with_tagline
from webapp.public_pages import mark_public

PUBLIC_PATHS = ["/pricing", "/", "/pricing?cycle=yearly&plan=professional", "/terms", "/privacy"]


def assert_public(response) -> None:
    cache_control = response.headers["Cache-Control"]
    assert re.fullmatch(r"public, max-age=60, stale-while-revalidate=600", cache_control)
    assert response.headers["ETag"].startswith('W/"c')
    assert "Set-Cookie" not in response.headers
    assert "cookie" not in response.headers.get("Vary", "").lower()
    assert "accept-encoding" in response.headers["Vary"].lower()


def assert_private(response) -> None:
    assert response.headers["Cache-Control"] == "private, no-store"
    assert "cookie" in response.headers["Vary"].lower()
    assert "ETag" not in response.headers


@pytest.mark.parametrize("path", PUBLIC_PATHS)
def test_anonymous_pages_are_public_with_no_cookie_business(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert_public(response)
    html = response.get_data(as_text=True)
    # Nothing per visitor in a shared page: no CSRF token, no form that posts.
    assert "csrf_token" not in html
    assert not re.search(r"<form[^>]*method=\"post\"", html, re.IGNORECASE)
    assert client.get_cookie("session") is None


def test_anonymous_actions_lead_to_sign_up_by_plain_links(client):
    html = client.get("/pricing").get_data(as_text=True)
    assert 'href="/signup?plan=professional&amp;cycle=monthly"' in html


@pytest.mark.parametrize("path", PUBLIC_PATHS)
def test_a_current_etag_gets_304_without_rendering(app, client, path):
    etag = client.get(path).headers["ETag"]
    rendered = []
    template_rendered.connect(lambda *_a, **kw: rendered.append(kw["template"].name), app)
    response = client.get(path, headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == etag
    assert_public(response)
    assert rendered == []
    # An older ETag (or a stranger's) gets the page.
    assert client.get(path, headers={"If-None-Match": 'W/"c0-old"'}).status_code == 200


def test_gzip_and_plain_bodies_are_the_same_page_under_one_etag(client):
    packed = client.get("/pricing", headers={"Accept-Encoding": "gzip"})
    plain = client.get("/pricing", headers={"Accept-Encoding": "identity"})
    assert packed.headers["Content-Encoding"] == "gzip"
    assert "Content-Encoding" not in plain.headers
    assert gzip.decompress(packed.data) == plain.data
    assert packed.headers["ETag"] == plain.headers["ETag"]


def test_publishing_copy_changes_the_etag_at_once(app, client):
    before = client.get("/pricing")
    publish(app, with_tagline(app, "Now with more credits"))
    after = client.get("/pricing", headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200
    assert after.headers["ETag"] != before.headers["ETag"]
    assert "Now with more credits" in after.get_data(as_text=True)
    assert_public(after)


def test_the_etag_is_the_same_on_every_worker(client, other_worker):
    # A CDN revalidates against whichever host it reaches: the validator must not be per process.
    assert (
        client.get("/pricing").headers["ETag"]
        == (other_worker.test_client().get("/pricing").headers["ETag"])
    )


def test_members_get_the_private_variant(app, client):
    create_user(app)
    AuthActions(app, client).login()
    for path in ["/pricing", "/", "/terms", "/privacy"]:
        response = client.get(path)
        assert response.status_code == 200
        assert_private(response)
    html = client.get("/pricing").get_data(as_text=True)
    assert "Log out" in html


def test_a_session_cookie_alone_gets_the_private_variant(client):
    client.get("/login")  # sets a session cookie (its CSRF secret); nobody is logged in
    assert client.get_cookie("session") is not None
    response = client.get("/pricing")
    assert_private(response)
    assert "Log in" in response.get_data(as_text=True)
    # Even with the public page's ETag: a request with a cookie is never answered from it.
    public_etag = client.application.test_client().get("/pricing").headers["ETag"]
    assert client.get("/pricing", headers={"If-None-Match": public_etag}).status_code == 200


def test_an_authorization_header_gets_the_private_variant(client):
    assert_private(client.get("/pricing", headers={"Authorization": "Bearer x"}))


def test_logging_in_clears_the_browsers_cached_public_pages(app, client):
    create_user(app)
    response = AuthActions(app, client).login()
    assert response.headers["Clear-Site-Data"] == '"cache"'
    assert "Clear-Site-Data" not in client.get("/account").headers


def test_a_public_answer_that_wrote_the_session_is_sent_private(app, client):
    @app.get("/test-public-with-session")
    def leaky() -> Response:
        session["visitor"] = "someone"
        response = Response("hello")
        response.set_etag("x", weak=True)
        mark_public(response)
        return response

    response = client.get("/test-public-with-session")
    assert response.headers["Cache-Control"] == "private, no-store"
    assert "ETag" not in response.headers
    assert "Set-Cookie" in response.headers  # the session was still saved, privately
