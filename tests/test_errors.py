"""Error pages for people, JSON errors under /api/."""

import pytest
from flask import abort

from webapp.extensions import db


@pytest.fixture
def app(app):
    @app.get("/boom")
    def boom():
        raise RuntimeError("kaboom")

    @app.get("/api/v1/boom")
    def api_boom():
        raise RuntimeError("kaboom")

    @app.get("/forbidden")
    def forbidden():
        abort(403)

    return app


@pytest.mark.parametrize(
    ("path", "method", "status", "heading"),
    [
        ("/no-such-page", "get", 404, "Page not found"),
        ("/logout", "get", 405, "That action isn&#39;t available here"),
        ("/forbidden", "get", 403, "You can&#39;t open this page"),
        ("/signup", "post", 400, "This page was open too long"),  # no CSRF token
    ],
)
def test_error_pages_are_in_the_site_look(client, path, method, status, heading):
    response = getattr(client, method)(path)
    assert response.status_code == status
    html = response.get_data(as_text=True)
    assert heading in html
    assert 'href="/pricing"' in html and "site.css" in html


def test_unexpected_error_is_a_friendly_500_without_traceback(client, caplog):
    response = client.get("/boom")
    assert response.status_code == 500
    html = response.get_data(as_text=True)
    assert "Something went wrong on our side" in html
    assert "kaboom" not in html and "Traceback" not in html
    assert any("Exception on /boom [GET]" in r.message for r in caplog.records)


@pytest.mark.parametrize("path", ["/boom", "/api/v1/boom"])
def test_each_500_is_logged_once_with_its_traceback(client, caplog, path):
    client.get(path)
    errors = [record for record in caplog.records if record.levelname == "ERROR"]
    assert len(errors) == 1, [record.getMessage() for record in errors]
    assert errors[0].exc_info and "kaboom" in str(errors[0].exc_info[1])
    assert errors[0].name == "webapp"


def test_500_rolls_back_the_session(app, client):
    @app.get("/half-write")
    def half_write():
        from webapp.models import User

        db.session.add(User(email="half@example.com", password_hash="x"))
        db.session.flush()
        raise RuntimeError("crash after a write")

    assert client.get("/half-write").status_code == 500
    with app.app_context():
        assert db.session.execute(db.text("select count(*) from users")).scalar() == 0


@pytest.mark.parametrize(
    ("path", "method", "status", "code"),
    [
        ("/api/v1/nothing-here", "get", 404, "not_found"),
        ("/api/v1/boom", "post", 405, "method_not_allowed"),
        ("/api/v1/boom", "get", 500, "internal_error"),
    ],
)
def test_api_errors_are_json(client, path, method, status, code):
    response = getattr(client, method)(path)
    assert response.status_code == status
    assert response.is_json
    assert response.get_json()["error"]["code"] == code
    assert "kaboom" not in response.get_data(as_text=True)


def test_405_keeps_the_allow_header(client):
    response = client.post("/api/v1/boom")
    assert "GET" in response.headers["Allow"]


def test_security_headers_on_every_response(client):
    for path in ("/pricing", "/no-such-page", "/api/v1/nothing-here"):
        headers = client.get(path).headers
        csp = headers["Content-Security-Policy"]
        assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"]
