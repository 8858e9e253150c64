"""API test helpers: credentials of both kinds, and validation of responses against OpenAPI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from werkzeug.test import TestResponse

from tests.conftest import create_user
from webapp.api import keys
from webapp.api.openapi import openapi_document

PASSWORD = "correct horse battery"


def issue_token(client: FlaskClient, email: str = "ada@example.com") -> str:
    response = client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["accessToken"]


def issue_api_key(app: Flask, user_id: int, name: str = "integration") -> str:
    with app.app_context():
        return keys.create_key(user_id, name).secret


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


@dataclass(frozen=True)
class Caller:
    """One flavour of the API: JWT on the plain path, API key on the `/api` path."""

    flavour: str
    suffix: str
    headers: dict[str, str]

    def path(self, path: str) -> str:
        return f"/api/v1{path}{self.suffix}"


@pytest.fixture
def user_id(app: Flask) -> int:
    return create_user(app, password=PASSWORD)


@pytest.fixture(params=["jwt", "api_key"])
def caller(request: pytest.FixtureRequest, app: Flask, client: FlaskClient, user_id: int) -> Caller:
    """Parametrizes a test over both flavours, each with the user's own credential."""
    if request.param == "jwt":
        return Caller("jwt", "", bearer(issue_token(client)))
    return Caller("api_key", "/api", bearer(issue_api_key(app, user_id)))


# --- OpenAPI conformance -----------------------------------------------------------------------

_DOCUMENT = openapi_document()
_REGISTRY = Registry().with_resource("urn:openapi", Resource.from_contents(_DOCUMENT, DRAFT202012))


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = _DOCUMENT
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _pointer(*parts: str) -> str:
    return "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


def assert_conforms(response: TestResponse, method: str, path: str) -> Any:
    """Check `response` against the documented response for `method path` (API path, no /api/v1).

    Returns the parsed JSON body for further assertions.
    """
    assert response.mimetype == "application/json", response.get_data(as_text=True)[:200]
    operation = _DOCUMENT["paths"][path][method.lower()]
    status = str(response.status_code)
    assert status in operation["responses"], f"{status} is not documented for {method} {path}"
    documented = _resolve(operation["responses"][status])
    schema_ref = "urn:openapi#/" + _pointer(
        "paths", path, method.lower(), "responses", status, "content", "application/json", "schema"
    )
    if "$ref" in operation["responses"][status]:
        name = operation["responses"][status]["$ref"].rsplit("/", 1)[1]
        schema_ref = "urn:openapi#/" + _pointer(
            "components", "responses", name, "content", "application/json", "schema"
        )
    assert "application/json" in documented["content"]
    validator = Draft202012Validator(
        {"$ref": schema_ref}, registry=_REGISTRY, format_checker=FormatChecker()
    )
    body = response.get_json()
    errors = sorted(validator.iter_errors(body), key=str)
    assert not errors, f"{method} {path} {status}: {errors[0].message} in {body}"
    return body


ConformanceCheck = Callable[[TestResponse, str, str], Any]
