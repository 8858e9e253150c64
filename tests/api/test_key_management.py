"""API keys over the API (API.md, "API keys over the API"): shapes, JWT only, ownership, expiry,
bad input and the once-a-minute lastUsedAt."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from tests.api.conftest import PASSWORD, assert_conforms, bearer, issue_api_key, issue_token
from tests.conftest import create_user, sql
from webapp.extensions import db
from webapp.models.base import utcnow

KEY_FIELDS = {
    "id",
    "name",
    "description",
    "keyPreview",
    "scopes",
    "isActive",
    "lastUsedAt",
    "expiresAt",
    "createdAt",
}
ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.fixture
def jwt(client: FlaskClient, user_id: int) -> dict[str, str]:
    return bearer(issue_token(client))


def create(client: FlaskClient, headers: dict[str, str], **body: Any):
    return client.post("/api/v1/api-keys", json=body, headers=headers)


def run_sql(app: Flask, statement: str, **params: Any) -> None:
    with app.app_context():
        db.session.execute(text(statement), params)
        db.session.commit()


def as_utc(value: Any) -> datetime:
    """A timestamp column as read back through raw SQL (SQLite gives naive strings)."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


# --- the shapes of API.md ----------------------------------------------------------------------


def test_create_answers_201_with_the_key_once_and_the_documented_fields(app, client, jwt):
    expires = (utcnow() + timedelta(days=10)).replace(microsecond=0)
    response = create(
        client,
        jwt,
        name="Zapier",
        description="Posts usage",
        scopes=["read"],
        expiresAt=expires.isoformat().replace("+00:00", "Z"),
    )
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    body = assert_conforms(response, "POST", "/api-keys")
    assert set(body) == {"apiKey", "warning"}
    assert "shown once" in body["warning"]
    key = body["apiKey"]
    assert set(key) == KEY_FIELDS | {"key"}
    assert re.fullmatch(r"llmgen_[A-Za-z0-9_-]{43}", key["key"])
    assert key["keyPreview"] == key["key"][:13] + "…"
    assert key["id"].startswith("key_") and not key["id"][4:].isdigit()
    assert key["name"] == "Zapier" and key["description"] == "Posts usage"
    assert key["scopes"] == ["read"] and key["isActive"] is True
    assert key["lastUsedAt"] is None
    assert key["expiresAt"] == expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ISO_Z.fullmatch(key["createdAt"])
    # Stored hashed: the secret is nowhere in the table.
    assert key["key"] not in str(sql(app, "select * from api_keys"))


def test_create_defaults_to_full_scope_without_expiry_or_description(client, jwt):
    key = create(client, jwt, name="CI").get_json()["apiKey"]
    assert (key["scopes"], key["expiresAt"], key["description"]) == (["full"], None, None)


def test_list_shows_the_callers_keys_newest_first_without_secrets(app, client, jwt, user_id):
    first = create(client, jwt, name="one").get_json()["apiKey"]
    second = create(client, jwt, name="two", scopes=["read"]).get_json()["apiKey"]
    other = create_user(app, email="eve@example.com", password=PASSWORD)
    issue_api_key(app, other, "eve's")

    response = client.get("/api/v1/api-keys", headers=jwt)
    assert response.status_code == 200
    body = assert_conforms(response, "GET", "/api-keys")
    assert set(body) == {"apiKeys", "total"}
    assert body["total"] == 2
    assert [key["id"] for key in body["apiKeys"]] == [second["id"], first["id"]]
    for listed, created in zip(body["apiKeys"], [second, first], strict=True):
        assert set(listed) == KEY_FIELDS
        assert listed == {field: created[field] for field in KEY_FIELDS}


def test_update_changes_name_description_and_scopes_only(client, jwt):
    key = create(client, jwt, name="old", description="was").get_json()["apiKey"]
    path = f"/api/v1/api-keys/{key['id']}"
    response = client.put(path, json={"name": " new ", "scopes": ["read"]}, headers=jwt)
    assert response.status_code == 200
    body = assert_conforms(response, "PUT", "/api-keys/{id}")
    assert set(body) == {"apiKey"} and set(body["apiKey"]) == KEY_FIELDS
    changed = body["apiKey"]
    assert (changed["name"], changed["description"], changed["scopes"]) == ("new", "was", ["read"])
    assert {f: changed[f] for f in ("id", "keyPreview", "createdAt", "expiresAt")} == {
        f: key[f] for f in ("id", "keyPreview", "createdAt", "expiresAt")
    }
    cleared = client.put(path, json={"description": None}, headers=jwt).get_json()["apiKey"]
    assert cleared["description"] is None and cleared["name"] == "new"


def test_delete_revokes_at_once_and_the_key_leaves_the_list(client, jwt):
    created = create(client, jwt, name="gone").get_json()["apiKey"]
    secret = bearer(created["key"])
    assert client.get("/api/v1/credits/balance/api", headers=secret).status_code == 200

    response = client.delete(f"/api/v1/api-keys/{created['id']}", headers=jwt)
    assert response.status_code == 200
    body = assert_conforms(response, "DELETE", "/api-keys/{id}")
    assert body["apiKey"]["id"] == created["id"] and body["apiKey"]["isActive"] is False

    refused = client.get("/api/v1/credits/balance/api", headers=secret)
    assert refused.status_code == 401
    assert client.get("/api/v1/api-keys", headers=jwt).get_json() == {"apiKeys": [], "total": 0}
    again = client.delete(f"/api/v1/api-keys/{created['id']}", headers=jwt)
    assert again.status_code == 404


def test_a_revoked_key_is_refused_at_once_by_another_worker(client, jwt, other_worker):
    created = create(client, jwt, name="gone").get_json()["apiKey"]
    elsewhere = other_worker.test_client()
    assert (
        elsewhere.get("/api/v1/credits/balance/api", headers=bearer(created["key"])).status_code
        == 200
    )
    client.delete(f"/api/v1/api-keys/{created['id']}", headers=jwt)
    assert (
        elsewhere.get("/api/v1/credits/balance/api", headers=bearer(created["key"])).status_code
        == 401
    )


# --- JWT only: a key cannot manage keys -------------------------------------------------------

MANAGEMENT_CALLS = [
    ("GET", "/api/v1/api-keys", None),
    ("POST", "/api/v1/api-keys", {"name": "minted by a key", "scopes": ["full"]}),
    ("PUT", "/api/v1/api-keys/{id}", {"scopes": ["full"]}),
    ("DELETE", "/api/v1/api-keys/{id}", None),
]


@pytest.mark.parametrize("scope", ["read", "full"])
@pytest.mark.parametrize(("method", "path", "body"), MANAGEMENT_CALLS)
def test_an_api_key_cannot_manage_keys(app, client, jwt, scope, method, path, body):
    created = create(client, jwt, name="integration", scopes=[scope]).get_json()["apiKey"]
    before = sql(app, "select public_id, name, scope, revoked_at from api_keys order by id")
    response = client.open(
        path.format(id=created["id"]), method=method, json=body, headers=bearer(created["key"])
    )
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "api_key_not_allowed"
    assert sql(app, "select public_id, name, scope, revoked_at from api_keys order by id") == before


@pytest.mark.parametrize(("method", "path", "body"), MANAGEMENT_CALLS)
def test_an_invalid_key_or_no_credential_is_401(client, jwt, method, path, body):
    for headers in (bearer("llmgen_" + "x" * 43), {}):
        response = client.open(path.format(id="key_x"), method=method, json=body, headers=headers)
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "unauthorized"


def test_there_is_no_api_key_twin_of_the_management_endpoints(app):
    rules = {rule.rule for rule in app.url_map.iter_rules()}
    assert "/api/v1/api-keys" in rules
    assert not any(rule.startswith("/api/v1/api-keys") and rule.endswith("/api") for rule in rules)


# --- ownership and ids -------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_someone_elses_key_is_404_and_untouched(app, client, jwt, method):
    other = create_user(app, email="eve@example.com", password=PASSWORD)
    issue_api_key(app, other, "eve's")
    [(theirs,)] = sql(app, "select public_id from api_keys")
    response = client.open(
        f"/api/v1/api-keys/{theirs}", method=method, json={"name": "mine"}, headers=jwt
    )
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "api_key_not_found"
    assert sql(app, "select name, revoked_at from api_keys") == [("eve's", None)]


@pytest.mark.parametrize("key_id", ["key_nope", "1", "nope", "key_" + "x" * 200, "%00"])
@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_unknown_ids_are_404_or_400_never_500(client, jwt, method, key_id):
    response = client.open(
        f"/api/v1/api-keys/{key_id}", method=method, json={"name": "x"}, headers=jwt
    )
    assert response.status_code in (400, 404)
    assert response.get_json()["error"]["code"] in ("api_key_not_found", "invalid_characters")


def test_a_sequential_row_id_does_not_name_a_key(client, jwt, app):
    create(client, jwt, name="one")
    [(row_id,)] = sql(app, "select id from api_keys")
    assert client.delete(f"/api/v1/api-keys/{row_id}", headers=jwt).status_code == 404


# --- bad input ---------------------------------------------------------------------------------

BAD_CREATES = [
    ({}, "validation_error"),
    ({"name": ""}, "validation_error"),
    ({"name": "   "}, "validation_error"),
    ({"name": "x" * 61}, "validation_error"),
    ({"name": 5}, "validation_error"),
    ({"name": None}, "validation_error"),
    ({"name": ["a"]}, "validation_error"),
    ({"name": "ok", "description": "d" * 501}, "validation_error"),
    ({"name": "ok", "description": 7}, "validation_error"),
    ({"name": "ok", "nickname": "x"}, "validation_error"),
    ({"name": "ok", "scopes": "read"}, "invalid_scopes"),
    ({"name": "ok", "scopes": []}, "invalid_scopes"),
    ({"name": "ok", "scopes": ["admin"]}, "invalid_scopes"),
    ({"name": "ok", "scopes": ["read", "full"]}, "invalid_scopes"),
    ({"name": "ok", "scopes": [1]}, "invalid_scopes"),
    ({"name": "ok", "scopes": None}, "invalid_scopes"),
    ({"name": "ok", "expiresAt": "2000-01-01T00:00:00Z"}, "invalid_expiry"),
    ({"name": "ok", "expiresAt": "9999-12-31T23:59:59Z"}, "invalid_expiry"),
    ({"name": "ok", "expiresAt": "tomorrow"}, "invalid_expiry"),
    ({"name": "ok", "expiresAt": "2030-02-30T00:00:00Z"}, "invalid_expiry"),
    ({"name": "ok", "expiresAt": 1893456000}, "invalid_expiry"),
    ({"name": "ok", "expiresAt": "x" * 5000}, "invalid_expiry"),
]


@pytest.mark.parametrize(("body", "code"), BAD_CREATES)
def test_bad_creates_are_400_with_a_stable_code_and_make_nothing(app, client, jwt, body, code):
    response = client.post("/api/v1/api-keys", json=body, headers=jwt)
    assert response.status_code == 400, response.get_json()
    assert_conforms(response, "POST", "/api-keys")
    assert response.get_json()["error"]["code"] == code
    assert sql(app, "select count(*) from api_keys") == [(0,)]


@pytest.mark.parametrize("offset", [timedelta(seconds=-1), timedelta(days=365, minutes=1)])
def test_expiry_must_be_in_the_next_365_days(client, jwt, offset):
    moment = (utcnow() + offset).isoformat()
    response = create(client, jwt, name="x", expiresAt=moment)
    assert response.get_json()["error"]["code"] == "invalid_expiry"


def test_an_expiry_needs_a_time_zone_and_may_use_any_offset(client, jwt):
    naive = (utcnow() + timedelta(days=1)).replace(tzinfo=None).isoformat()
    assert create(client, jwt, name="x", expiresAt=naive).get_json()["error"]["code"] == (
        "invalid_expiry"
    )
    plus_two = (utcnow() + timedelta(days=1)).astimezone(timezone(timedelta(hours=2)))
    plus_two = plus_two.replace(microsecond=0)
    key = create(client, jwt, name="x", expiresAt=plus_two.isoformat()).get_json()["apiKey"]
    assert key["expiresAt"] == plus_two.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "validation_error"),
        ({"name": ""}, "validation_error"),
        ({"name": "x" * 61}, "validation_error"),
        ({"name": None}, "validation_error"),
        ({"scopes": ["owner"]}, "invalid_scopes"),
        ({"expiresAt": "2030-01-01T00:00:00Z"}, "validation_error"),
        ({"description": ["x"]}, "validation_error"),
    ],
)
def test_bad_updates_are_400_and_change_nothing(app, client, jwt, body, code):
    key = create(client, jwt, name="keep", scopes=["read"]).get_json()["apiKey"]
    response = client.put(f"/api/v1/api-keys/{key['id']}", json=body, headers=jwt)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == code
    assert sql(app, "select name, scope, description from api_keys") == [("keep", "read", None)]


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        ("{not json", "application/json", 400, "invalid_json"),
        ("[1, 2]", "application/json", 400, "validation_error"),
        ('{"name": NaN}', "application/json", 400, "invalid_json"),
        ("name=x", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ],
)
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_bodies_that_are_not_json_objects_are_refused(
    app, client, jwt, method, data, content_type, status, code
):
    key = create(client, jwt, name="keep").get_json()["apiKey"]
    path = "/api/v1/api-keys" if method == "POST" else f"/api/v1/api-keys/{key['id']}"
    response = client.open(
        path, method=method, data=data, headers=jwt | {"Content-Type": content_type}
    )
    assert (response.status_code, response.get_json()["error"]["code"]) == (status, code)
    assert sql(app, "select count(*), min(name) from api_keys") == [(1, "keep")]


def test_an_unknown_query_parameter_on_the_list_is_400(client, jwt):
    response = client.get("/api/v1/api-keys?limit=5", headers=jwt)
    assert (response.status_code, response.get_json()["error"]["code"]) == (400, "validation_error")


def test_an_unverified_account_gets_email_not_verified(app, client):
    create_user(app, email="new@example.com", password=PASSWORD, verified=False)
    headers = bearer(issue_token(client, "new@example.com"))
    response = create(client, headers, name="x")
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "email_not_verified"
    assert sql(app, "select count(*) from api_keys") == [(0,)]


def test_the_twenty_first_key_is_409(app, client, jwt, user_id):
    for number in range(20):
        issue_api_key(app, user_id, f"key {number}")
    response = create(client, jwt, name="one too many")
    assert response.status_code == 409
    assert_conforms(response, "POST", "/api-keys")
    assert response.get_json()["error"]["code"] == "too_many_api_keys"


# --- expiry ------------------------------------------------------------------------------------


def test_an_expired_key_is_refused_with_its_own_code_and_listed_inactive(
    app, client, jwt, other_worker
):
    created = create(
        client, jwt, name="short", expiresAt=(utcnow() + timedelta(hours=1)).isoformat()
    ).get_json()["apiKey"]
    secret = bearer(created["key"])
    assert client.get("/api/v1/credits/balance/api", headers=secret).status_code == 200

    # An hour later (the database's clock is the one that counts: no worker caches keys).
    run_sql(app, "update api_keys set expires_at = :past", past=utcnow() - timedelta(seconds=1))
    for worker in (client, other_worker.test_client()):
        refused = worker.get("/api/v1/credits/balance/api", headers=secret)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert refused.get_json()["error"]["code"] == "api_key_expired"
    [listed] = client.get("/api/v1/api-keys", headers=jwt).get_json()["apiKeys"]
    assert listed["isActive"] is False
    # Still the owner's to tidy up.
    assert client.delete(f"/api/v1/api-keys/{created['id']}", headers=jwt).status_code == 200


def test_an_expired_key_cannot_reach_key_management_either(app, client, jwt):
    created = create(
        client, jwt, name="short", expiresAt=(utcnow() + timedelta(hours=1)).isoformat()
    )
    secret = bearer(created.get_json()["apiKey"]["key"])
    run_sql(app, "update api_keys set expires_at = :past", past=utcnow() - timedelta(seconds=1))
    response = client.get("/api/v1/api-keys", headers=secret)
    assert (response.status_code, response.get_json()["error"]["code"]) == (401, "api_key_expired")


# --- lastUsedAt: at most one write a minute per key ------------------------------------------


def last_used(app: Flask) -> datetime | None:
    [(value,)] = sql(app, "select last_used_at from api_keys")
    return None if value is None else as_utc(value)


def test_last_used_is_written_at_most_once_a_minute_across_workers(app, client, jwt, other_worker):
    created = create(client, jwt, name="busy").get_json()["apiKey"]
    secret = bearer(created["key"])
    workers = [client, other_worker.test_client()]
    assert last_used(app) is None

    before = utcnow().replace(microsecond=0)
    workers[0].get("/api/v1/credits/balance/api", headers=secret)
    first = last_used(app)
    assert first is not None and first >= before

    for worker in workers * 3:  # more uses in the same minute, on both workers: no write
        assert worker.get("/api/v1/subscriptions/current/api", headers=secret).status_code == 200
    assert last_used(app) == first
    listed = client.get("/api/v1/api-keys", headers=jwt).get_json()["apiKeys"][0]
    assert listed["lastUsedAt"] == first.strftime("%Y-%m-%dT%H:%M:%SZ")

    # A minute later the next use is recorded again.
    run_sql(app, "update api_keys set last_used_at = :then", then=first - timedelta(seconds=61))
    workers[1].get("/api/v1/credits/balance/api", headers=secret)
    assert last_used(app) >= first


def test_a_failed_use_is_not_recorded(app, client, jwt):
    created = create(client, jwt, name="typo").get_json()["apiKey"]
    client.get("/api/v1/credits/balance/api", headers=bearer(created["key"] + "x"))
    assert last_used(app) is None
