"""The API-key panel on the account page: create (shown once), list, revoke; CSRF on every form."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from tests.api.conftest import PASSWORD, bearer
from tests.conftest import create_user, csrf_token, sql
from webapp.extensions import db
from webapp.models.base import utcnow
from webapp.security import CSRF_PLACEHOLDER
from webapp.templating import format_date

KEY_RE = re.compile(r'data-testid="new-api-key"|value="(llmgen_[A-Za-z0-9_-]+)"')


@pytest.fixture
def logged_in(auth, user_id):
    auth.login(password=PASSWORD)
    return auth


def create_key(client, name="CI pipeline", **fields):
    token = csrf_token(client, "/account")
    data = {"name": name, "scope": "full", "expires": "never", "csrf_token": token, **fields}
    return client.post("/account/api-keys", data=data)


def shown_key(response) -> str:
    match = re.search(r'value="(llmgen_[A-Za-z0-9_-]+)"', response.get_data(as_text=True))
    assert match, "the new key is not shown"
    return match.group(1)


def test_the_account_page_shows_the_panel(client, logged_in):
    html = client.get("/account").get_data(as_text=True)
    assert 'id="api-keys"' in html
    assert "No API keys yet." in html
    assert 'action="/account/api-keys"' in html


def test_create_shows_the_key_once_and_stores_only_its_hash(app, client, logged_in, user_id):
    response = create_key(client)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    key = shown_key(response)
    assert re.fullmatch(r"llmgen_[A-Za-z0-9_-]{43}", key)

    rows = sql(app, "select name, prefix, key_hash, user_id, scope, expires_at from api_keys")
    digest = hashlib.sha256(key.encode()).hexdigest()
    assert rows == [("CI pipeline", key[:13], digest, user_id, "full", None)]

    account = client.get("/account").get_data(as_text=True)
    assert key not in account
    assert "CI pipeline" in account and f"{key[:13]}…" in account
    assert 'data-testid="api-key-last-used">Never<' in account

    assert client.get("/api/v1/credits/balance/api", headers=bearer(key)).status_code == 200
    account = client.get("/account").get_data(as_text=True)
    assert 'data-testid="api-key-last-used">Never<' not in account


def test_two_keys_are_different(client, logged_in):
    assert shown_key(create_key(client, "one")) != shown_key(create_key(client, "two"))


def test_revoke_stops_the_key(app, client, logged_in):
    key = shown_key(create_key(client))
    key_id = sql(app, "select public_id from api_keys")[0][0]
    token = csrf_token(client, "/account")
    response = client.post(f"/account/api-keys/{key_id}/revoke", data={"csrf_token": token})
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/account#api-keys")
    assert sql(app, "select revoked_at is not null from api_keys")[0][0]

    refused = client.get("/api/v1/credits/balance/api", headers=bearer(key))
    assert refused.status_code == 401
    assert refused.get_json()["error"]["code"] == "unauthorized"
    assert "CI pipeline" not in client.get("/account").get_data(as_text=True)


def test_nobody_can_revoke_someone_elses_key(app, client, auth, logged_in):
    create_key(client)
    key_id = sql(app, "select public_id from api_keys")[0][0]
    auth.logout()
    create_user(app, email="eve@example.com", password=PASSWORD)
    auth.login(email="eve@example.com", password=PASSWORD)
    token = csrf_token(client, "/account")
    response = client.post(f"/account/api-keys/{key_id}/revoke", data={"csrf_token": token})
    assert response.status_code == 404
    assert sql(app, "select revoked_at from api_keys")[0][0] is None


FORM_PATHS = ["/account/api-keys", "/account/api-keys/1/revoke", "/account/api-keys/1/edit"]


@pytest.mark.parametrize("path", FORM_PATHS)
def test_forms_need_the_csrf_token(app, client, logged_in, path):
    create_key(client)
    response = client.post(path, data={"name": "no token"})
    assert response.status_code == 400
    assert sql(app, "select count(*), count(revoked_at) from api_keys")[0] == (1, 0)


@pytest.mark.parametrize("path", FORM_PATHS)
def test_forms_need_a_login(client, path):
    response = client.post(path, data={"name": "anonymous"})
    assert response.status_code in (302, 303, 400)


@pytest.mark.parametrize("name", ["", "   ", "x" * 61])
def test_bad_names_are_explained(app, client, logged_in, name):
    response = create_key(client, name)
    # The account page again, the form's error summary on top, what was typed kept.
    assert response.status_code == 400
    assert sql(app, "select count(*) from api_keys")[0][0] == 0
    html = response.get_data(as_text=True)
    assert 'data-testid="error-summary"' in html and '<a href="#name">Key name:' in html


def test_key_names_are_escaped(client, logged_in):
    create_key(client, "<script>alert(1)</script>")
    html = client.get("/account").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html


def test_create_with_description_read_scope_and_expiry(app, client, logged_in):
    before = utcnow()
    response = create_key(
        client, "Dashboard", description="Reads credits", scope="read", expires="30"
    )
    assert response.status_code == 200
    assert "Read-only" in response.get_data(as_text=True)
    [(description, scope, expires_at)] = sql(
        app, "select description, scope, expires_at from api_keys"
    )
    assert (description, scope) == ("Reads credits", "read")
    expires_at = (
        expires_at if isinstance(expires_at, datetime) else datetime.fromisoformat(expires_at)
    )
    expires_at = expires_at.replace(tzinfo=UTC) if expires_at.tzinfo is None else expires_at
    assert before + timedelta(days=30) <= expires_at <= utcnow() + timedelta(days=30)

    account = client.get("/account").get_data(as_text=True)
    assert "Reads credits" in account and "Read-only" in account
    expected = format_date(expires_at)
    assert re.search(rf'data-testid="api-key-expires">{re.escape(expected)} ', account)

    key = shown_key(response)
    assert client.get("/api/v1/credits/balance/api", headers=bearer(key)).status_code == 200
    refused = client.post("/api/v1/subscriptions/portal/api", headers=bearer(key))
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "insufficient_scope"


@pytest.mark.parametrize(
    "fields",
    [{"scope": "admin"}, {"expires": "3650"}, {"expires": "-1"}, {"description": "d" * 501}],
)
def test_bad_choices_are_explained_and_nothing_is_made(app, client, logged_in, fields):
    response = create_key(client, "bad", **fields)
    assert response.status_code == 400
    assert sql(app, "select count(*) from api_keys")[0][0] == 0
    html = response.get_data(as_text=True)
    assert 'data-testid="error-summary"' in html and 'name="name"' in html
    assert 'value="bad"' in html  # the name typed is kept


def edit_key(client, public_id, **fields):
    prefix = f"edit-{public_id}-"
    token = csrf_token(client, "/account")
    data = {f"{prefix}{name}": value for name, value in fields.items()}
    data["csrf_token"] = token
    return client.post(f"/account/api-keys/{public_id}/edit", data=data)


def test_edit_changes_name_description_and_scope(app, client, logged_in):
    key = shown_key(create_key(client))
    [(public_id,)] = sql(app, "select public_id from api_keys")
    html = client.get("/account").get_data(as_text=True)
    assert f'action="/account/api-keys/{public_id}/edit"' in html

    response = edit_key(
        client, public_id, name="Renamed", description="Now read-only", scope="read"
    )
    assert response.status_code == 303
    assert sql(app, "select name, description, scope from api_keys") == [
        ("Renamed", "Now read-only", "read")
    ]
    refused = client.post("/api/v1/subscriptions/portal/api", headers=bearer(key))
    assert refused.get_json()["error"]["code"] == "insufficient_scope"


def test_edit_with_bad_values_changes_nothing(app, client, logged_in):
    create_key(client)
    [(public_id,)] = sql(app, "select public_id from api_keys")
    response = edit_key(client, public_id, name="   ", scope="read")
    assert response.status_code == 303
    assert sql(app, "select name, scope from api_keys") == [("CI pipeline", "full")]
    assert 'class="flash flash-error"' in client.get("/account").get_data(as_text=True)


def test_nobody_can_edit_someone_elses_key(app, client, auth, logged_in):
    create_key(client)
    [(public_id,)] = sql(app, "select public_id from api_keys")
    auth.logout()
    create_user(app, email="eve@example.com", password=PASSWORD)
    auth.login(email="eve@example.com", password=PASSWORD)
    response = edit_key(client, public_id, name="mine now", scope="full")
    assert response.status_code == 404
    assert sql(app, "select name from api_keys") == [("CI pipeline",)]


def test_descriptions_are_escaped(client, logged_in):
    create_key(client, "x", description="<img src=x onerror=alert(1)>")
    html = client.get("/account").get_data(as_text=True)
    assert "<img src=x" not in html and "&lt;img src=x" in html


@pytest.mark.parametrize("public_id", ["key_endsWith_", "key_endsWith-", "key_plain"])
def test_edit_works_whatever_the_id_ends_with(app, client, logged_in, public_id):
    create_key(client)
    with app.app_context():
        db.session.execute(text("update api_keys set public_id = :id"), {"id": public_id})
        db.session.commit()
    html = client.get("/account").get_data(as_text=True)
    assert f'name="edit-{public_id}-name"' in html
    assert edit_key(client, public_id, name="Edited", scope="full").status_code == 303
    assert sql(app, "select name from api_keys") == [("Edited",)]


def test_every_form_of_the_panel_gets_the_visitors_csrf_token(client, logged_in):
    # Cached pages are stamped only where a field is named exactly `csrf_token`.
    create_key(client, "one")
    html = client.get("/account").get_data(as_text=True)
    assert CSRF_PLACEHOLDER not in html
    panel = html[html.index('id="api-keys"') :]
    forms = re.findall(r"<form\b.*?</form>", panel, flags=re.S)
    assert len(forms) == 3  # edit, revoke, create
    assert all('name="csrf_token"' in form for form in forms)
