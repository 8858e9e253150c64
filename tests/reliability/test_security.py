"""Security, walked from the URL map: CSRF, headers, cookies, log-in limits, redirects, other
people's things, admin roles, secrets in logs and production refusals."""

from __future__ import annotations

import logging
import re

import pytest
from flask import Flask

from tests.billing_helpers import subscribe
from tests.conftest import AuthActions, create_user, csrf_token, make_app, sql
from webapp import create_app
from webapp.config import Config, ConfigError
from webapp.stripe_gateway import SANDBOX_API_KEY

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
# Token-authenticated or signature-verified routes: nothing rides on a cookie there.
# The one-click unsubscribe is posted by mail clients (RFC 8058), with no session or token of
# ours: its signed, per-member URL is the proof, and all it can do is stop a kind of mail.
CSRF_EXEMPT_PREFIXES = ("/api/", "/webhooks/", "/sandbox/control/", "/emails/unsubscribe/")
SAMPLE_ARGUMENTS = {"int": "1", "default": "x", "path": "x"}


def sample_path(rule) -> str:
    """A concrete URL for a rule, with placeholder values for its arguments."""
    path = rule.rule
    for converter, name in re.findall(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>", path):
        value = SAMPLE_ARGUMENTS.get(converter or "default", "x")
        path = re.sub(rf"<(?:[^:>]+:)?{name}>", value, path)
    return path


def state_changing_routes(app: Flask) -> list[tuple[str, str, str]]:
    return sorted(
        (rule.endpoint, method, sample_path(rule))
        for rule in app.url_map.iter_rules()
        for method in sorted((rule.methods or set()) & STATE_CHANGING)
    )


# Flask-WTF's refusals ("The CSRF token is missing.", "… is invalid.", "The CSRF tokens do not
# match.", "The referrer does not match the host." …), shown on the 400 page.
# Flask-WTF's own words (JSON paths), or our "open too long" page (errors/csrf.html), which
# only a CSRFError renders.
CSRF_REFUSAL = re.compile(
    r"The CSRF (session )?tokens? (is|has|do)|The referrer|data-refusal=\"csrf\""
)


def refused_for_csrf(response) -> bool:
    return response.status_code == 400 and bool(
        CSRF_REFUSAL.search(response.get_data(as_text=True))
    )


def test_every_state_changing_form_route_refuses_a_request_without_a_csrf_token(app, figures):
    create_user(app, role="admin")
    client = app.test_client()
    AuthActions(app, client).login()  # logged in, so no login redirect can hide a missing check
    exempt = set()
    for endpoint, method, path in state_changing_routes(app):
        response = client.open(path, method=method, data={"email": "x@example.com"})
        figures.add("bad inputs tried")
        if path.startswith(CSRF_EXEMPT_PREFIXES):
            if not refused_for_csrf(response):
                exempt.add(endpoint)
            continue
        assert refused_for_csrf(response), (endpoint, method, response.status_code)
    # The only routes without CSRF: the webhook, the token-authenticated API, sandbox control,
    # the one-click unsubscribe.
    assert {e.split(".")[0] for e in exempt} == {"webhooks", "api", "sandbox", "emails"}
    assert {e for e in exempt if e.startswith("emails.")} == {"emails.unsubscribe"}
    assert {e for e in exempt if e.startswith("sandbox.")} == {
        "sandbox.control_advance",
        "sandbox.control_deliver",
        "sandbox.control_faults",
    }


def test_sandbox_routes_exist_only_in_sandbox_mode(database_url):
    real = make_app(database_url, STRIPE_SECRET_KEY="sk_test_reliability", STRIPE_API_BASE="")
    assert [r.rule for r in real.url_map.iter_rules() if r.rule.startswith("/sandbox")] == []
    exempt_routes = [
        path
        for _endpoint, _method, path in state_changing_routes(real)
        if path.startswith(CSRF_EXEMPT_PREFIXES)
    ]
    assert all(p.startswith(("/api/", "/webhooks/", "/emails/")) for p in exempt_routes)


# --- Headers and cookies ---------------------------------------------------------------------


def every_response(app: Flask, client, **kwargs):
    """One response per GET route (with sample arguments), plus a 404, a 405 and a CSRF 400."""
    for rule in app.url_map.iter_rules():
        if "GET" in (rule.methods or set()):
            yield rule.rule, client.get(sample_path(rule), **kwargs)
    yield "404", client.get("/no-such-page", **kwargs)
    yield "405", client.put("/pricing", **kwargs)
    yield "csrf", client.post("/checkout", **kwargs)
    yield "api-401", client.get("/api/v1/subscriptions/current", **kwargs)


def test_security_headers_on_every_response_and_hsts_over_https(app, figures):
    create_user(app, role="admin")
    client = app.test_client()
    AuthActions(app, client).login()
    # environ_base cannot set wsgi.url_scheme (the builder overwrites it); base_url can.
    https = {"base_url": "https://localhost"}
    seen = 0
    for name, response in every_response(app, client, **https):
        headers = response.headers
        csp = headers.get("Content-Security-Policy", "")
        assert "frame-ancestors 'none'" in csp, name
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, name
        assert "default-src 'self'" in csp and "script-src 'self'" in csp, name
        assert headers.get("X-Content-Type-Options") == "nosniff", name
        # Pages that may carry a mailed token (password reset, address links) send none at all.
        stricter = name.startswith(
            ("/password/", "/verify-email/", "/account/email", "/account/password")
        )
        referrer = "no-referrer" if stricter else "strict-origin-when-cross-origin"
        assert headers.get("Referrer-Policy") == referrer, name
        assert headers.get("Strict-Transport-Security", "").startswith("max-age="), name
        seen += 1
    assert seen > 25
    plain = client.get("/pricing")
    assert "Strict-Transport-Security" not in plain.headers  # HSTS over plain HTTP means nothing


@pytest.mark.parametrize("config_overrides", [{"SESSION_COOKIE_SECURE": True}])
def test_session_cookie_is_secure_httponly_and_lax_when_configured(app, client, auth):
    response = auth.signup()
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("session="))
    assert {"Secure", "HttpOnly", "SameSite=Lax"} <= {p.strip() for p in cookie.split(";")}


# --- Log-in limits ---------------------------------------------------------------------------


def normalised(html: str) -> str:
    return re.sub(r'name="csrf_token"[^>]*>', "", re.sub(r'value="[^"]*"', "", html))


@pytest.mark.parametrize(
    "config_overrides", [{"RATELIMIT_ENABLED": True, "LOGIN_RATE_LIMIT": "5 per minute"}]
)
def test_login_is_rate_limited_alike_for_known_and_unknown_emails(app, figures):
    create_user(app)
    answers = {}
    for address, email in (("127.0.0.21", "ada@example.com"), ("127.0.0.22", "nobody@example.com")):
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = address
        auth = AuthActions(app, client)
        answers[email] = [auth.login(email, "wrong password") for _ in range(7)]
        figures.add("bad inputs tried", 7)
        # Once limited, even the right password waits: guessing cannot go on.
        assert auth.login(email, "correct horse battery").status_code == 429
    known, unknown = answers.values()
    assert [r.status_code for r in known] == [400] * 5 + [429] * 2
    assert [r.status_code for r in unknown] == [r.status_code for r in known]
    for a, b in zip(known, unknown, strict=True):
        assert normalised(a.get_data(as_text=True)).replace("ada@", "nobody@") == normalised(
            b.get_data(as_text=True)
        )


# --- Redirect targets ------------------------------------------------------------------------

TRICKY_TARGETS = [
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/\t/evil.example",
    "/%09/evil.example",
    "//evil.example\n",
    "\n//evil.example",
    " https://evil.example",
    "https://evil.example/",
    "HTTPS://EVIL.EXAMPLE/",
    "https:evil.example",
    "https:/\\evil.example",
    "https://site.example.evil.example/",
    "https://site.example@evil.example/",
    "//site.example@evil.example",
    "https://site.example%40evil.example/",
    "https://site.example%2eevil.example/",
    "https://site.example\\@evil.example/",
    "https://evil.example#https://site.example/",
    "http://site.example:8080/",
    "ftp://site.example/",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "java\tscript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "%2F%2Fevil.example",
    "/%2F%2Fevil.example",
    "/%5Cevil.example",
]


@pytest.mark.parametrize("config_overrides", [{"ALLOWED_REDIRECT_HOSTS": ["site.example"]}])
def test_tricky_redirect_targets_are_refused_everywhere(app, client, figures):
    create_user(app)
    token = client.post(
        "/api/v1/auth/token", json={"email": "ada@example.com", "password": "correct horse battery"}
    ).get_json()["accessToken"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert len(TRICKY_TARGETS) >= 15
    for target in TRICKY_TARGETS:
        logged_in = AuthActions(app, app.test_client()).login(next=target)
        assert logged_in.headers["Location"] == "/account", target
        for field in ("successUrl", "cancelUrl"):
            body = {"planId": "starter", field: target}
            response = client.post("/api/v1/subscriptions/checkout", json=body, headers=bearer)
            assert response.get_json()["error"]["code"] == "invalid_redirect_url", (field, target)
        response = client.post(
            "/api/v1/subscriptions/portal", json={"returnUrl": target}, headers=bearer
        )
        assert response.get_json()["error"]["code"] == "invalid_redirect_url", target
        figures.add("bad inputs tried", 4)
    # The allowlisted host itself still works, so the refusals above are not blanket ones.
    body = {"planId": "starter", "successUrl": "https://site.example/welcome"}
    allowed = client.post("/api/v1/subscriptions/checkout", json=body, headers=bearer)
    assert allowed.status_code == 200, allowed.get_json()


# --- Other people's things and admin roles ---------------------------------------------------


@pytest.mark.parametrize("config_overrides", [{"SANDBOX_DELIVER_TO_SELF": True}])
def test_nobody_sees_or_acts_on_another_users_billing(app, figures):
    create_user(app, "ada@example.com")
    create_user(app, "eve@example.com")
    ada, eve = app.test_client(), app.test_client()
    AuthActions(app, ada).login("ada@example.com")
    AuthActions(app, eve).login("eve@example.com")
    session_id = subscribe(ada, "business", "monthly")
    token = csrf_token(ada, "/account")
    created = ada.post("/account/api-keys", data={"name": "ada", "csrf_token": token})
    ada_key = re.search(r'value="(llmgen_[^"]+)"', created.get_data(as_text=True))
    assert ada_key, "the created page shows the key"

    assert eve.get(f"/checkout/success?session_id={session_id}").status_code == 404
    account = eve.get("/account").get_data(as_text=True)
    assert "Business" not in account.split("<main", 1)[-1].split("plan-name", 1)[-1][:200]
    eve_token = csrf_token(eve, "/account")
    portal = eve.post("/billing/portal", data={"csrf_token": eve_token})
    assert portal.headers["Location"] == "/account"  # no billing account: not Ada's portal
    for key_id in (1, 2, 3):
        revoke = eve.post(f"/account/api-keys/{key_id}/revoke", data={"csrf_token": eve_token})
        assert revoke.status_code == 404
    jwt = eve.post(
        "/api/v1/auth/token", json={"email": "eve@example.com", "password": "correct horse battery"}
    ).get_json()["accessToken"]
    headers = {"Authorization": f"Bearer {jwt}"}
    assert (
        eve.get("/api/v1/subscriptions/current", headers=headers).get_json()["hasSubscription"]
        is False
    )
    assert eve.get("/api/v1/credits/balance", headers=headers).get_json()["balance"] == 0
    # Ada's key still works for Ada, and only shows Ada's things.
    ada_headers = {"Authorization": f"Bearer {ada_key.group(1)}"}
    mine = ada.get("/api/v1/subscriptions/current/api", headers=ada_headers)
    assert mine.status_code == 200 and mine.get_json()["hasSubscription"] is True
    figures.add("bad inputs tried", 6)


def test_every_admin_route_is_role_checked(app, figures):
    create_user(app, "user@example.com", role="user")
    anonymous, user = app.test_client(), app.test_client()
    AuthActions(app, user).login("user@example.com")
    token = csrf_token(user, "/account")
    routes = [r for r in app.url_map.iter_rules() if r.rule.startswith("/admin")]
    assert len(routes) >= 8
    for rule in routes:
        path = sample_path(rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            data = {"csrf_token": token, "headline": "Hacked"} if method != "GET" else None
            answer = anonymous.open(path, method=method, data=data)
            assert answer.status_code in (302, 400), (path, method)
            if answer.status_code == 302:
                assert answer.headers["Location"].startswith("/login"), path
            assert user.open(path, method=method, data=data).status_code == 403, (path, method)
            figures.add("bad inputs tried", 2)


# --- Secrets in logs -------------------------------------------------------------------------

SECRETS = {
    "SECRET_KEY": "reliability-secret-key-0123456789abcdef",
    "JWT_SECRET": "reliability-jwt-secret-0123456789abcdef",
    "STRIPE_WEBHOOK_SECRET": "whsec_reliability_0123456789abcdef",
}


@pytest.mark.parametrize(
    "config_overrides", [{**SECRETS, "LOG_LEVEL": "DEBUG", "SANDBOX_DELIVER_TO_SELF": True}]
)
def test_no_secret_appears_in_the_logs_of_a_full_flow(app, client, auth, caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("webapp", "werkzeug", "stripe", "sqlalchemy", "flask_limiter"):
        caplog.set_level(logging.DEBUG, logger=name)
    password = "Tr0ub4dor&3-reliability"
    assert auth.signup("ada@example.com", password).status_code == 303
    # API keys wait for a verified address: open the link of the sign-up mail.
    [(text,)] = sql(app, "select text_body from outgoing_mail")
    verify = re.search(r"http://localhost(/verify-email/\S+)", text)
    assert verify and client.get(verify.group(1)).status_code == 303
    session_cookie = client.get_cookie("session").value
    session_id = subscribe(client, "professional", "monthly")
    client.get(f"/checkout/success?session_id={session_id}")
    jwt = client.post(
        "/api/v1/auth/token", json={"email": "ada@example.com", "password": password}
    ).get_json()["accessToken"]
    token = csrf_token(client, "/account")
    created = client.post("/account/api-keys", data={"name": "ci", "csrf_token": token})
    api_key = re.search(r'value="(llmgen_[^"]+)"', created.get_data(as_text=True))
    assert api_key, "the created page shows the key"
    headers = {"Authorization": f"Bearer {api_key.group(1)}"}
    assert client.get("/api/v1/credits/balance/api", headers=headers).status_code == 200
    jwt_headers = {"Authorization": f"Bearer {jwt}"}
    assert client.get("/api/v1/credits/balance", headers=jwt_headers).status_code == 200
    portal = client.post("/billing/portal", data={"csrf_token": csrf_token(client, "/account")})
    assert portal.status_code == 303

    logs = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    assert "checkout session" in logs and "webhook" in logs  # the flow really logged
    secrets = {
        **SECRETS,
        "password": password,
        "session cookie": session_cookie,
        "JWT": jwt,
        "API key": api_key.group(1),
        "Stripe key": SANDBOX_API_KEY,
    }
    leaked = [name for name, secret in secrets.items() if secret in logs]
    assert leaked == []


# --- Production refuses to start insecurely --------------------------------------------------


def test_production_from_the_environment_refuses_every_unsafe_default(monkeypatch):
    for name in ("SECRET_KEY", "JWT_SECRET", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("APP_ENV", "production")
    with pytest.raises(ConfigError) as refused:
        create_app()
    for complaint in ("SECRET_KEY", "JWT_SECRET", "sandbox", "STRIPE_WEBHOOK_SECRET"):
        assert complaint in str(refused.value)
    # A real key but the sandbox's own webhook secret is refused too.
    with pytest.raises(ConfigError, match="STRIPE_WEBHOOK_SECRET"):
        Config(
            {
                "APP_ENV": "production",
                "SECRET_KEY": "s" * 40,
                "JWT_SECRET": "j" * 40,
                "STRIPE_SECRET_KEY": "sk_live_x",
                "STRIPE_WEBHOOK_SECRET": "whsec_sandbox_local_development_only",
            }
        ).validate()
