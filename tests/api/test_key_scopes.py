"""Scopes hold on every `/api` endpoint, found in the app's url_map so none can be forgotten:
a read-only key may GET and nothing else (403 `insufficient_scope`, before the endpoint does
anything), a full key may do what the endpoint offers; JWT-only endpoints refuse keys."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from tests.api.conftest import bearer
from tests.conftest import make_app, sql
from webapp.api import keys
from webapp.extensions import db
from webapp.models import ApiKey
from webapp.models.base import utcnow

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Endpoints anyone may call, without a credential.
PUBLIC = {
    "/api/v1/plans",
    "/api/v1/openapi.json",
    "/api/v1/auth/token",
    "/api/v1/auth/login",
    "/api/v1/auth/refresh",
    "/api/v1/auth/logout",
}


@pytest.fixture
def config_overrides() -> dict[str, str]:
    # The generation service's endpoints (`/credits/usage…`) take this credential, never a key.
    return {"CREDITS_SERVICE_TOKEN": "s" * 40}


def _api_routes(app: Flask) -> list[tuple[str, str]]:
    """Every (method, path) under /api/v1, path parameters filled with a made-up id."""
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = re.sub(r"<[^>]+>", "key_made_up", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            routes.append((method, path))
    return sorted(routes)


# Collected once from a real app (any database will do: the url_map does not depend on it).
ROUTES = _api_routes(make_app("sqlite://"))
KEY_ROUTES = [(method, path) for method, path in ROUTES if path.endswith("/api")]
OTHER_ROUTES = [
    (method, path) for method, path in ROUTES if not path.endswith("/api") and path not in PUBLIC
]


def test_the_url_map_has_what_we_expect_to_walk():
    # A guard against the walk silently covering nothing.
    assert ("POST", "/api/v1/subscriptions/checkout/api") in KEY_ROUTES
    assert ("POST", "/api/v1/subscriptions/portal/api") in KEY_ROUTES
    assert ("GET", "/api/v1/credits/balance/api") in KEY_ROUTES
    assert ("GET", "/api/v1/api-keys") in OTHER_ROUTES


def _key(app: Flask, user_id: int, scope: str) -> dict[str, str]:
    with app.app_context():
        return bearer(keys.create_key(user_id, f"{scope} key", scope=scope).secret)


def _call(client: FlaskClient, method: str, path: str, headers: dict[str, str]):
    body = {} if method in WRITE_METHODS else None
    return client.open(path, method=method, json=body, headers=headers)


def _code(response) -> str | None:
    body = response.get_json(silent=True) or {}
    return (body.get("error") or {}).get("code")


@pytest.mark.parametrize(("method", "path"), KEY_ROUTES)
def test_a_read_only_key_may_read_and_nothing_else(app, client, user_id, method, path):
    headers = _key(app, user_id, "read")
    before = sql(app, "select count(*) from sandbox_objects")
    response = _call(client, method, path, headers)
    if method in WRITE_METHODS:
        assert response.status_code == 403, (method, path, response.get_json())
        assert _code(response) == "insufficient_scope"
        # Refused before the endpoint ran: nothing was asked of Stripe.
        assert sql(app, "select count(*) from sandbox_objects") == before
    else:
        assert response.status_code == 200, (method, path, response.get_json())


@pytest.mark.parametrize(("method", "path"), KEY_ROUTES)
def test_a_full_key_is_not_held_back_by_its_scope(app, client, user_id, method, path):
    response = _call(client, method, path, _key(app, user_id, "full"))
    assert response.status_code not in (401, 403), (method, path, response.get_json())
    assert _code(response) != "insufficient_scope"


@pytest.mark.parametrize(("method", "path"), OTHER_ROUTES)
@pytest.mark.parametrize("scope", ["read", "full"])
def test_endpoints_for_access_tokens_never_answer_an_api_key(
    app, client, user_id, method, path, scope
):
    response = _call(client, method, path, _key(app, user_id, scope))
    assert response.status_code in (401, 403), (method, path, response.get_json())
    if path.startswith("/api/v1/api-keys"):
        assert _code(response) == "api_key_not_allowed"
    else:
        assert _code(response) == "unauthorized"


@pytest.mark.parametrize(("method", "path"), KEY_ROUTES)
def test_an_expired_key_is_refused_everywhere(app, client, user_id, method, path):
    headers = _key(app, user_id, "full")
    with app.app_context():
        db.session.execute(update(ApiKey).values(expires_at=utcnow()))
        db.session.commit()
    response = _call(client, method, path, headers)
    assert (response.status_code, _code(response)) == (401, "api_key_expired")
