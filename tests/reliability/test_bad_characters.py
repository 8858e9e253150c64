"""Bad characters at the edge: NUL bytes, lone surrogates and control characters in paths, query
strings, headers, form fields and JSON bodies get a 400 before any view sees them.

PostgreSQL refuses NUL in text and lone surrogates cannot be encoded at all, so each of these
once reached the database and answered 500 there. The battery walks the URL map (every route,
every method) and every JSON endpoint's fields, so a new route is covered without a new test.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest

from tests.conftest import AuthActions, create_user, csrf_token
from tests.reliability.test_security import STATE_CHANGING, sample_path

GROUP = "bad characters at the edge"
# In URLs, headers and bodies alike.
BAD_TEXT = ["\x00", "cs_\x00", "a\x00b", "\x01", "\x1b[31m", "\x08"]
# Only JSON can carry a lone surrogate (URL and form decoding replace invalid UTF-8).
BAD_JSON_TEXT = [*BAD_TEXT, "\ud800", "x\udfff", "\udbff\u0000"]
JSON_PREFIXES = ("/api/", "/sandbox/control/", "/webhooks/")
QUERY_NAMES = ("session_id", "plan", "cycle", "next", "refresh", "limit", "v", "x")
JSON_ENDPOINTS = {
    "/api/v1/auth/token": ("email", "password"),
    "/api/v1/subscriptions/checkout": ("planId", "billingCycle", "successUrl", "cancelUrl"),
    "/api/v1/subscriptions/portal": ("returnUrl",),
    "/sandbox/control/advance": ("days", "seconds"),
    "/sandbox/control/faults": ("clear",),
    "/sandbox/control/deliver": ("include_late",),
}


@pytest.fixture
def admin(app):
    create_user(app, role="admin")
    client = app.test_client()
    AuthActions(app, client).login()
    return client


@pytest.fixture
def token(app, admin):
    response = admin.post(
        "/api/v1/auth/token", json={"email": "ada@example.com", "password": "correct horse battery"}
    )
    return response.get_json()["accessToken"]


def refused(response, path: str) -> bool:
    """A 400, as JSON with a stable code on the JSON paths and as the 400 page elsewhere."""
    if response.status_code != 400:
        return False
    if path.startswith(JSON_PREFIXES):
        body = response.get_json(silent=True) or {}
        return body.get("error", {}).get("code") == "invalid_characters"
    return "text/html" in response.content_type and "characters" in response.get_data(True)


def summary(failures: list[tuple]) -> str:
    """How many were not refused, how many of those crashed (5xx), and a few of each."""
    crashed = [failure for failure in failures if failure[-1] >= 500]
    return f"{len(failures)} not refused, {len(crashed)} answered 5xx: {crashed[:8]} {failures[:8]}"


def routes(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in sorted((rule.methods or set()) & ({"GET"} | STATE_CHANGING)):
            yield rule, method


def path_with(rule, value: str) -> str:
    """The rule's URL with `value` in every argument that is not a number."""
    path = rule.rule
    for name, converter in rule._converters.items():
        number = type(converter).__name__ == "IntegerConverter"
        path = re.sub(rf"<(?:[^:>]+:)?{name}>", "1" if number else value, path)
    return path


def test_every_route_refuses_bad_characters_in_its_path_and_query(app, admin, figures):
    failures = []
    for rule, method in routes(app):
        base = sample_path(rule)
        for bad in BAD_TEXT:
            attempts = [f"{base}?{name}={quote(bad)}" for name in QUERY_NAMES]
            attempts.append(f"{base}?{quote(bad)}=1")
            if "<" in rule.rule and "<int:" not in rule.rule:
                attempts.append(path_with(rule, quote(bad)))
            for url in attempts:
                response = admin.open(url, method=method)
                if not figures.attack(GROUP, refused=refused(response, url)):
                    failures.append((method, url, response.status_code))
    assert not failures, summary(failures)


def test_every_header_the_site_reads_refuses_bad_characters(app, admin, token, figures):
    headers = ["Authorization", "X-Request-ID", "Stripe-Signature", "Idempotency-Key"]
    paths = ["/", "/account", "/api/v1/subscriptions/current", "/api/v1/credits/balance/api"]
    failures = []
    for name in headers:
        for bad in ("Bearer \x00", f"Bearer {token}\x00", "sk_\x01", "\x00"):
            for path in paths:
                response = admin.get(path, headers={name: bad})
                if not figures.attack(GROUP, refused=refused(response, path)):
                    failures.append((name, bad, path, response.status_code))
    assert not failures, summary(failures)


def test_every_json_field_refuses_bad_characters(app, admin, token, figures):
    failures = []
    for path, fields in JSON_ENDPOINTS.items():
        for field in fields:
            for bad in BAD_JSON_TEXT:
                for body in ({field: bad}, {field: [bad]}, {field: {"k": bad}}, {bad: field}):
                    response = admin.post(
                        path,
                        data=json.dumps(body),
                        content_type="application/json",
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    if not figures.attack(GROUP, refused=refused(response, path)):
                        failures.append((path, body, response.status_code))
    assert not failures, summary(failures)


def test_every_form_route_refuses_bad_characters_in_its_fields(app, admin, figures):
    token = csrf_token(admin, "/account")
    failures = []
    for rule, method in routes(app):
        if method == "GET" or rule.rule.startswith(JSON_PREFIXES):
            continue
        path = sample_path(rule)
        for bad in BAD_TEXT:
            for data in ({"email": bad, "name": bad, "password": bad}, {bad: "x"}):
                response = admin.open(path, method=method, data={**data, "csrf_token": token})
                if not figures.attack(GROUP, refused=refused(response, path)):
                    failures.append((method, path, data, response.status_code))
    assert not failures, summary(failures)


def test_ordinary_text_still_passes(app, admin, token):
    """Tabs and line breaks in bodies, accents, emoji and valid surrogate pairs are text."""
    response = admin.post(
        "/api/v1/auth/token",
        json={"email": "zoë@example.com", "password": "tab\there\r\nline 😀"},
    )
    assert response.status_code == 401
    assert admin.get("/pricing?plan=caf%C3%A9").status_code == 200
    assert admin.get("/pricing", headers={"X-Request-ID": "req\tid"}).status_code == 200


CONTROL_BODIES = [
    ("/sandbox/control/advance", {"days": "soon"}),
    ("/sandbox/control/advance", {"days": ["1"]}),
    ("/sandbox/control/advance", {"seconds": {"n": 1}}),
    ("/sandbox/control/advance", {"days": "nan"}),
    ("/sandbox/control/advance", {"days": "1e300"}),
    ("/sandbox/control/advance", {"days": True}),
    ("/sandbox/control/advance", [1]),
    ("/sandbox/control/faults", {"api": {"count": "many"}}),
    ("/sandbox/control/faults", {"api": {"delay": "inf"}}),
    ("/sandbox/control/faults", {"api": ["500"]}),
    ("/sandbox/control/faults", {"webhooks": {"mode": "late", "count": [1]}}),
    ("/sandbox/control/faults", "clear"),
    ("/sandbox/control/deliver", ["include_late"]),
]


@pytest.mark.parametrize(("path", "body"), CONTROL_BODIES)
def test_sandbox_control_refuses_malformed_values_with_json(client, figures, path, body):
    response = client.post(path, data=json.dumps(body), content_type="application/json")
    ok = response.status_code == 400 and response.is_json and "error" in response.get_json()
    assert figures.attack(GROUP, refused=ok), (response.status_code, response.get_data()[:200])


@pytest.mark.parametrize("limit", ["many", "1.5", "-3"])
def test_sandbox_delivery_log_refuses_or_clamps_a_bad_limit(client, figures, limit):
    response = client.get(f"/sandbox/control/deliveries?limit={limit}")
    refused = response.status_code == 400 or (response.status_code == 200 and limit == "-3")
    assert figures.attack(GROUP, refused=refused), response.status_code
