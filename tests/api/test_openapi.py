"""The OpenAPI document: served, complete, and true of the real API (schemathesis fuzzes it)."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.api.conftest import bearer, issue_api_key, issue_token
from webapp import billing
from webapp.api.openapi import REFUSED_IN_TEXT, openapi_document
from webapp.extensions import db
from webapp.models import User
from webapp.models.base import utcnow

HTTP_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}
# Our generation service's endpoints, with the service credential (not a user's).
SERVICE_PATHS = ("/credits/usage", "/credits/usage/reverse")
SERVICE_TOKEN = "s" * 40


@pytest.fixture
def config_overrides() -> dict[str, str]:
    return {"CREDITS_SERVICE_TOKEN": SERVICE_TOKEN}


PUBLIC_PATHS = (
    "/plans",
    "/openapi.json",
    "/auth/token",
    "/auth/login",
    "/auth/refresh",
    "/auth/logout",
)


def test_the_document_is_served(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.get_json() == openapi_document()
    assert response.get_json()["openapi"].startswith("3.1")


def test_the_document_is_valid_openapi_3_1():
    # Validates against the OpenAPI 3.1 meta-schema bundled with schemathesis; raises if not.
    schemathesis.openapi.from_dict(openapi_document()).validate()


def test_every_api_route_is_documented_and_nothing_else(app: Flask):
    # Path parameters compare by position: Flask's `<key_id>` is OpenAPI's `{id}`.
    routes = {
        (re.sub(r"<[^>]+>", "{}", rule.rule.removeprefix("/api/v1")), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/")
        for method in (rule.methods or set()) & HTTP_METHODS
    }
    document = openapi_document()
    documented = {
        (re.sub(r"\{[^}]+\}", "{}", path), method)
        for path, ops in document["paths"].items()
        for method in ops
    }
    assert routes == documented


def test_each_flavour_documents_its_own_security_scheme():
    for path, operations in openapi_document()["paths"].items():
        for operation in operations.values():
            schemes = [name for entry in operation["security"] for name in entry]
            if path.endswith("/api"):
                assert schemes == ["apiKey"], path
            elif path in PUBLIC_PATHS:
                assert schemes == [], path
            elif path in SERVICE_PATHS:
                assert schemes == ["serviceToken"], path
                assert "401" in operation["responses"], path
            else:
                assert schemes == ["accessToken"], path
                assert "401" in operation["responses"], path


# --- fuzzing ----------------------------------------------------------------------------------


@pytest.fixture
def api_schema(app: Flask):
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


@pytest.fixture
def credentials(app: Flask, client, user_id: int) -> dict[str, dict[str, str]]:
    """A real access token and API key for the fuzzed requests, so every path is exercised.

    The user also gets their Stripe customer (as after a first checkout), so the portal can
    answer 200 to a valid request instead of always `no_billing_account`.
    """
    with app.app_context():
        billing.ensure_customer(db.session.get(User, user_id))
    return {"jwt": bearer(issue_token(client)), "api_key": bearer(issue_api_key(app, user_id))}


REDIRECT_FIELDS = ("successUrl", "cancelUrl", "returnUrl")


def _onto_the_site(url: str) -> str:
    """The generated URL's path, query and fragment on the site's own (allowed) host."""
    parts = urlsplit(url)
    return urlunsplit(("http", "localhost", parts.path, parts.query, parts.fragment))


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzz_the_api_from_its_document(case, credentials):
    path = case.operation.path
    # Schemathesis's WSGI transport does not decompress; ask for the plain body.
    headers = {"Accept-Encoding": "identity"}
    positive = case.meta is None or not case.meta.generation.mode.is_negative
    # A negative case may be one without its required Authorization header: keep it without
    # (a 401 is its rejection); adding our credential would turn it into a valid request that
    # the "schema-violating request accepted" check then counts against us.
    drops_credential = not positive and "Authorization" not in (case.headers or {})
    if drops_credential or path in PUBLIC_PATHS:
        pass
    elif path in SERVICE_PATHS:
        headers |= bearer(SERVICE_TOKEN)
    else:
        headers |= credentials["api_key" if path.endswith("/api") else "jwt"]
    # Any host is schema-valid, but only allowlisted hosts are accepted (a documented 400).
    # Keep the fuzzed path and query, on our own host, so valid requests can succeed.
    if positive and isinstance(case.body, dict):
        for field in REDIRECT_FIELDS:
            if isinstance(case.body.get(field), str):
                case.body[field] = _onto_the_site(case.body[field])
        # Any date-time is schema-valid, but a key's expiry must lie within the next year
        # (a documented 400, `invalid_expiry`): keep the field, with a time that can work.
        if isinstance(case.body.get("expiresAt"), str):
            case.body["expiresAt"] = (utcnow() + timedelta(days=30)).isoformat()
        # Control characters are refused at the edge (a documented 400, `invalid_characters`,
        # and the fields' `pattern`), which the generator does not always honour: drop them.
        for field, value in case.body.items():
            if isinstance(value, str):
                case.body[field] = re.sub(f"[{REFUSED_IN_TEXT}]", "", value)
        # A key's name needs a visible character, which dropping them may have taken away.
        if isinstance(case.body.get("name"), str) and not case.body["name"].strip():
            case.body["name"] = "fuzzed"
    # A valid debit is refused with 402 whenever the balance is short: a documented answer that
    # schemathesis's "valid data is accepted" check does not know; every other check runs.
    excluded = [positive_data_acceptance] if path == "/credits/usage" else []
    case.call_and_validate(headers=headers, excluded_checks=excluded)
