"""The API-key panel on the account page: create (shown once), list, revoke; CSRF on every form."""

from __future__ import annotations

import hashlib
import re

import pytest

from tests.api.conftest import PASSWORD, bearer
from tests.conftest import create_user, csrf_token, sql

KEY_RE = re.compile(r'data-testid="new-api-key"|value="(llmgen_[A-Za-z0-9_-]+)"')


@pytest.fixture
def logged_in(auth, user_id):
    auth.login(password=PASSWORD)
    return auth


def create_key(client, name="CI pipeline"):
    token = csrf_token(client, "/account")
    return client.post("/account/api-keys", data={"name": name, "csrf_token": token})


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

    rows = sql(app, "select name, prefix, key_hash, user_id from api_keys")
    assert rows == [("CI pipeline", key[:13], hashlib.sha256(key.encode()).hexdigest(), user_id)]

    account = client.get("/account").get_data(as_text=True)
    assert key not in account
    assert "CI pipeline" in account and f"{key[:13]}…" in account
    assert "Never" in account

    assert client.get("/api/v1/credits/balance/api", headers=bearer(key)).status_code == 200
    assert "Never" not in client.get("/account").get_data(as_text=True)


def test_two_keys_are_different(client, logged_in):
    assert shown_key(create_key(client, "one")) != shown_key(create_key(client, "two"))


def test_revoke_stops_the_key(app, client, logged_in):
    key = shown_key(create_key(client))
    key_id = sql(app, "select id from api_keys")[0][0]
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
    key_id = sql(app, "select id from api_keys")[0][0]
    auth.logout()
    create_user(app, email="eve@example.com", password=PASSWORD)
    auth.login(email="eve@example.com", password=PASSWORD)
    token = csrf_token(client, "/account")
    response = client.post(f"/account/api-keys/{key_id}/revoke", data={"csrf_token": token})
    assert response.status_code == 404
    assert sql(app, "select revoked_at from api_keys")[0][0] is None


@pytest.mark.parametrize("path", ["/account/api-keys", "/account/api-keys/1/revoke"])
def test_forms_need_the_csrf_token(app, client, logged_in, path):
    create_key(client)
    response = client.post(path, data={"name": "no token"})
    assert response.status_code == 400
    assert sql(app, "select count(*), count(revoked_at) from api_keys")[0] == (1, 0)


@pytest.mark.parametrize("path", ["/account/api-keys", "/account/api-keys/1/revoke"])
def test_forms_need_a_login(client, path):
    response = client.post(path, data={"name": "anonymous"})
    assert response.status_code in (302, 303, 400)


@pytest.mark.parametrize("name", ["", "   ", "x" * 61])
def test_bad_names_are_explained(app, client, logged_in, name):
    response = create_key(client, name)
    assert response.status_code == 303
    assert sql(app, "select count(*) from api_keys")[0][0] == 0
    assert 'class="flash flash-error"' in client.get("/account").get_data(as_text=True)


def test_key_names_are_escaped(client, logged_in):
    create_key(client, "<script>alert(1)</script>")
    html = client.get("/account").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html
