"""Access tokens and API keys: issuing, refusing forgeries, and each flavour's own credential."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from tests.api.conftest import PASSWORD, assert_conforms, bearer, issue_api_key, issue_token
from tests.conftest import create_user, sql
from webapp.config import DEV_JWT_SECRET

JWT_PATHS = [
    ("GET", "/subscriptions/current"),
    ("GET", "/credits/balance"),
    ("POST", "/subscriptions/checkout"),
    ("POST", "/subscriptions/portal"),
]


def request(client, method, path, headers=None):
    body = {"planId": "starter"} if path.endswith(("checkout", "checkout/api")) else None
    return client.open(f"/api/v1{path}", method=method, headers=headers or {}, json=body)


def assert_unauthorized(response, method, path):
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert assert_conforms(response, method, path)["error"]["code"] == "unauthorized"


# --- POST /auth/token -------------------------------------------------------------------------


def test_token_is_an_hs256_jwt_with_the_standard_claims(app, client, user_id):
    response = client.post(
        "/api/v1/auth/token", json={"email": "Ada@Example.com ", "password": PASSWORD}
    )
    assert response.status_code == 200
    body = assert_conforms(response, "POST", "/auth/token")
    assert response.headers["Cache-Control"] == "no-store"
    assert body["tokenType"] == "Bearer" and body["expiresIn"] == 3600
    assert jwt.get_unverified_header(body["accessToken"])["alg"] == "HS256"
    claims = jwt.decode(body["accessToken"], app.config["JWT_SECRET"], algorithms=["HS256"])
    assert claims["sub"] == str(user_id)
    assert claims["exp"] - claims["iat"] == 3600
    assert len(claims["jti"]) >= 16
    assert claims["ver"] == 0  # the session version: a log-out or password change revokes it
    again = issue_token(client)
    assert jwt.decode(again, options={"verify_signature": False})["jti"] != claims["jti"]


@pytest.mark.parametrize(
    "body",
    [
        {"email": "ada@example.com", "password": "wrong password!"},
        {"email": "nobody@example.com", "password": PASSWORD},
    ],
)
def test_token_refuses_bad_credentials_with_one_message(client, user_id, body):
    response = client.post("/api/v1/auth/token", json=body)
    assert_unauthorized(response, "POST", "/auth/token")
    assert response.get_json()["error"]["message"] == "Incorrect email or password."


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"email": "ada@example.com"},
        {"email": 1, "password": PASSWORD},
        {"email": "ada@example.com", "password": None},
        {"email": "ada@example.com", "password": "x" * 129},
        {"email": "ada@example.com", "password": PASSWORD, "remember": True},
    ],
)
def test_token_validates_its_body(client, user_id, body):
    response = client.post("/api/v1/auth/token", json=body)
    assert response.status_code == 400
    assert assert_conforms(response, "POST", "/auth/token")["error"]["code"] == "validation_error"


@pytest.mark.parametrize("config_overrides", [{"JWT_LIFETIME_SECONDS": 120}])
def test_token_lifetime_is_configurable(client, user_id):
    body = client.post(
        "/api/v1/auth/token", json={"email": "ada@example.com", "password": PASSWORD}
    ).get_json()
    assert body["expiresIn"] == 120


# --- using tokens -----------------------------------------------------------------------------


def _sign(claims, secret=DEV_JWT_SECRET, algorithm="HS256"):
    return jwt.encode(claims, secret, algorithm=algorithm)


def _claims(user_id, **changes):
    now = int(time.time())
    return {"sub": str(user_id), "iat": now, "exp": now + 600, "jti": "test-jti", **changes}


def _unsigned(claims):
    """An `alg: none` token, as an attacker would write it by hand."""

    def part(data):
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def test_a_valid_token_works_on_every_jwt_endpoint(client, user_id):
    headers = bearer(issue_token(client))
    for method, path in JWT_PATHS:
        assert request(client, method, path, headers).status_code != 401, path


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda uid: _sign(_claims(uid), secret="not-our-secret"), id="forged"),
        pytest.param(lambda uid: _sign(_claims(uid, exp=int(time.time()) - 5)), id="expired"),
        pytest.param(lambda uid: _unsigned(_claims(uid)), id="alg-none"),
        pytest.param(lambda uid: _sign(_claims(uid), algorithm="HS512"), id="hs512"),
        pytest.param(lambda uid: _sign(_claims(uid), algorithm="HS384"), id="hs384"),
        pytest.param(lambda uid: _sign({"sub": str(uid), "iat": 1}), id="no-exp"),
        pytest.param(lambda uid: _sign(_claims(uid, sub="9999")), id="unknown-user"),
        pytest.param(lambda uid: _sign(_claims(uid, sub="\uff11")), id="non-ascii-sub"),
        pytest.param(lambda uid: _sign(_claims(uid, sub="1" * 40)), id="huge-sub"),
        pytest.param(lambda uid: "not.a.jwt", id="garbage"),
        pytest.param(lambda uid: _sign(_claims(uid))[:-3] + "abc", id="bad-signature"),
    ],
)
def test_bad_tokens_are_refused(app, client, user_id, make_token):
    with app.app_context():
        token = make_token(user_id)
    for method, path in JWT_PATHS:
        assert_unauthorized(request(client, method, path, bearer(token)), method, path)


def test_tampered_payload_is_refused(client, user_id):
    other = create_user(client.application, email="bob@example.com", password=PASSWORD)
    header, _, signature = issue_token(client).split(".")
    payload = base64.urlsafe_b64encode(json.dumps(_claims(other)).encode()).rstrip(b"=").decode()
    forged = f"{header}.{payload}.{signature}"
    response = request(client, "GET", "/subscriptions/current", bearer(forged))
    assert_unauthorized(response, "GET", "/subscriptions/current")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer   "},
        {"Authorization": "Basic YWRhOnB3"},
        {"Authorization": "Token abc"},
    ],
)
def test_missing_credential_is_refused(client, user_id, headers):
    for method, path in JWT_PATHS:
        assert_unauthorized(request(client, method, path, headers), method, path)
        api_path = path + "/api"
        assert_unauthorized(request(client, method, api_path, headers), method, api_path)


# --- each flavour takes only its own credential -------------------------------------------------


def test_an_api_key_is_refused_on_the_jwt_paths(app, client, user_id):
    headers = bearer(issue_api_key(app, user_id))
    for method, path in JWT_PATHS:
        response = request(client, method, path, headers)
        assert_unauthorized(response, method, path)
        assert "/api" in response.get_json()["error"]["message"]


def test_a_token_is_refused_on_the_api_key_paths(client, user_id):
    headers = bearer(issue_token(client))
    for method, path in JWT_PATHS:
        response = request(client, method, path + "/api", headers)
        assert_unauthorized(response, method, path + "/api")


def test_an_api_key_works_on_every_api_key_endpoint(app, client, user_id):
    headers = bearer(issue_api_key(app, user_id))
    for method, path in JWT_PATHS:
        assert request(client, method, path + "/api", headers).status_code != 401, path


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda key: key[:-1] + ("A" if key[-1] != "A" else "B"), id="one-char-off"),
        pytest.param(lambda key: key + "x", id="longer"),
        pytest.param(lambda key: key[:20], id="prefix-only"),
        pytest.param(lambda key: "llmgen_" + "A" * 43, id="made-up"),
        pytest.param(lambda key: "llmgen_", id="empty-secret"),
        pytest.param(lambda key: key.upper(), id="upper-case"),
    ],
)
def test_wrong_api_keys_are_refused(app, client, user_id, mangle):
    headers = bearer(mangle(issue_api_key(app, user_id)))
    for method, path in JWT_PATHS:
        assert_unauthorized(request(client, method, path + "/api", headers), method, path + "/api")


def test_api_key_use_is_recorded(app, client, user_id):
    key = issue_api_key(app, user_id)
    assert sql(app, "select last_used_at from api_keys")[0][0] is None
    client.get("/api/v1/credits/balance/api", headers=bearer(key))
    assert sql(app, "select last_used_at from api_keys")[0][0] is not None


def test_a_key_only_acts_for_its_owner(app, client, user_id):
    other = create_user(app, email="bob@example.com", password=PASSWORD)
    key = issue_api_key(app, other)
    app_ctx_token = issue_token(client)
    client.post(
        "/api/v1/subscriptions/checkout",
        json={"planId": "starter"},
        headers=bearer(app_ctx_token),
    )
    # Bob's key reads Bob's (empty) state, not Ada's.
    body = client.get("/api/v1/subscriptions/current/api", headers=bearer(key)).get_json()
    assert body["hasSubscription"] is False
    portal = client.post("/api/v1/subscriptions/portal/api", headers=bearer(key))
    assert portal.get_json()["error"]["code"] == "no_billing_account"
