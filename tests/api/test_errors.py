"""Every failure under /api is API.md's JSON envelope: bodies, methods, sizes, limits."""

from __future__ import annotations

import pytest

from tests.api.conftest import PASSWORD, assert_conforms, bearer, issue_api_key, issue_token

CHECKOUT = "/api/v1/subscriptions/checkout"


def assert_error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    text = response.get_data(as_text=True)
    assert "<html" not in text.lower() and "Traceback" not in text
    return body


@pytest.fixture
def headers(client, user_id):
    return bearer(issue_token(client))


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        ("planId=starter", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        ('{"planId": "starter"}', "text/plain", 415, "unsupported_media_type"),
        ('{"planId": "starter"', "application/json", 400, "invalid_json"),
        ("{'planId': 'starter'}", "application/json", 400, "invalid_json"),
        ('{"planId": NaN}', "application/json", 400, "invalid_json"),
        (b"\xff\xfe\xfa", "application/json", 400, "invalid_json"),
        ("[" * 100_000 + "]" * 100_000, "application/json", 400, "invalid_json"),
        ('["planId", "starter"]', "application/json", 400, "validation_error"),
        ('"starter"', "application/json", 400, "validation_error"),
        ("null", "application/json", 400, "validation_error"),
        ("42", "application/json", 400, "validation_error"),
    ],
)
def test_bad_bodies(client, headers, data, content_type, status, code):
    response = client.post(CHECKOUT, data=data, content_type=content_type, headers=headers)
    assert_error(response, status, code)
    assert_conforms(response, "POST", "/subscriptions/checkout")


def test_json_with_a_charset_is_fine(client, headers):
    response = client.post(
        CHECKOUT,
        data='{"planId": "starter"}',
        content_type="application/json; charset=utf-8",
        headers=headers,
    )
    assert response.status_code == 200


def test_a_portal_call_without_a_body_is_fine(client, headers):
    response = client.post("/api/v1/subscriptions/portal", headers=headers)
    assert_error(response, 400, "no_billing_account")


def test_too_large_body(client, headers):
    big = '{"planId": "' + "x" * (2 * 1024 * 1024) + '"}'
    response = client.post(CHECKOUT, data=big, content_type="application/json", headers=headers)
    assert_error(response, 413, "payload_too_large")
    assert_conforms(response, "POST", "/subscriptions/checkout")


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/api/v1/nope", 404, "not_found"),
        ("GET", "/api/v2/plans", 404, "not_found"),
        ("GET", "/api", 404, "not_found"),
        ("GET", "/api/v1/subscriptions/checkout", 405, "method_not_allowed"),
        ("DELETE", "/api/v1/subscriptions/current/api", 405, "method_not_allowed"),
        ("PUT", "/api/v1/plans", 405, "method_not_allowed"),
        ("GET", "/api/v1/auth/token", 405, "method_not_allowed"),
    ],
)
def test_unknown_paths_and_methods(client, method, path, status, code):
    response = client.open(path, method=method)
    assert_error(response, status, code)
    if status == 405:
        assert "Allow" in response.headers


def test_the_api_needs_no_csrf_token(client, headers):
    # The site enables CSRF everywhere else; a token-authenticated API has no cookie to protect.
    assert client.post(CHECKOUT, json={"planId": "starter"}, headers=headers).status_code == 200


@pytest.mark.parametrize("config_overrides", [{"STRIPE_MAX_NETWORK_RETRIES": 0}])
def test_a_payment_provider_outage_is_a_json_503(app, client, headers):
    app.extensions["stripe_sandbox"].faults.set_api(count=5, mode="500")
    response = client.post(CHECKOUT, json={"planId": "starter"}, headers=headers)
    assert_error(response, 503, "payment_provider_unavailable")
    assert_conforms(response, "POST", "/subscriptions/checkout")


# --- rate limits ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config_overrides", [{"RATELIMIT_ENABLED": True, "API_RATE_LIMIT": "3 per minute"}]
)
def test_rate_limits_per_credential_and_per_ip(app, client, user_id):
    key_a, key_b = issue_api_key(app, user_id, "a"), issue_api_key(app, user_id, "b")

    def balance(key, ip):
        return client.get(
            "/api/v1/credits/balance/api",
            headers=bearer(key),
            environ_base={"REMOTE_ADDR": ip},
        )

    assert [balance(key_a, "127.0.0.11").status_code for _ in range(3)] == [200, 200, 200]
    limited = balance(key_a, "127.0.0.11")
    assert_error(limited, 429, "rate_limited")
    assert int(limited.headers["Retry-After"]) > 0
    assert_conforms(limited, "GET", "/credits/balance/api")
    # The same credential from another address: still limited (per credential).
    assert balance(key_a, "127.0.0.12").status_code == 429
    # Another credential from the first address: limited too (per IP).
    assert balance(key_b, "127.0.0.11").status_code == 429
    # Another credential from another address: fine.
    assert balance(key_b, "127.0.0.13").status_code == 200


@pytest.mark.parametrize(
    "config_overrides", [{"RATELIMIT_ENABLED": True, "LOGIN_RATE_LIMIT": "2 per minute"}]
)
def test_token_endpoint_is_limited_per_ip(client, user_id):
    def attempt(ip):
        return client.post(
            "/api/v1/auth/token",
            json={"email": "ada@example.com", "password": "guess " + ip},
            environ_base={"REMOTE_ADDR": ip},
        )

    assert [attempt("127.0.0.11").status_code for _ in range(2)] == [401, 401]
    limited = attempt("127.0.0.11")
    assert_error(limited, 429, "rate_limited")
    assert "Retry-After" in limited.headers
    assert attempt("127.0.0.12").status_code == 401
    good = client.post(
        "/api/v1/auth/token",
        json={"email": "ada@example.com", "password": PASSWORD},
        environ_base={"REMOTE_ADDR": "127.0.0.13"},
    )
    assert good.status_code == 200
