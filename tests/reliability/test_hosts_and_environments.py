"""Issue 13, items 1, 4 and 5: forged Host headers, unknown environments, weak production settings.

Every absolute URL the site hands to Stripe (success, cancel and return URLs, and the sandbox's
hosted pages) is built from PUBLIC_BASE_URL, never from the request's Host header; production
answers only for its configured hosts; development secrets serve loopback requests only.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.api.conftest import bearer, issue_token
from tests.billing_helpers import subscribe
from tests.conftest import SAFE_PRODUCTION, AuthActions, create_user, csrf_token
from webapp import create_app
from webapp.config import DEV_JWT_SECRET, DEV_SECRET_KEY, Config, ConfigError
from webapp.stripe_gateway import get_gateway

FORGED = {"Host": "evil.example"}
HOSTS = "forged hosts and redirects"
ENVIRONMENTS = "unknown environments and weak production settings"


# The test suite has secrets of its own; with the development ones, forged hosts are refused
# outright (item 4).
with_development_secrets = pytest.mark.parametrize(
    "config_overrides", [{"SECRET_KEY": DEV_SECRET_KEY, "JWT_SECRET": DEV_JWT_SECRET}]
)


def on_site(url: str) -> bool:
    """True if `url` is on the configured public base URL (the tests' http://localhost)."""
    return urlsplit(url).netloc == "localhost"


def checkout_session(app, session_id: str):
    with app.app_context():
        return get_gateway().retrieve_checkout_session(session_id)


# --- 1. The Host header never decides where money redirects ---------------------------------


def test_api_checkout_with_a_forged_host_sends_the_payer_back_to_the_site(app, client, figures):
    create_user(app)
    headers = {**bearer(issue_token(client)), **FORGED}
    response = client.post(
        "/api/v1/subscriptions/checkout", json={"planId": "starter"}, headers=headers
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    session = checkout_session(app, body["sessionId"])
    for url in (session.success_url, session.cancel_url, body["url"]):
        assert figures.attack(HOSTS, refused=on_site(url)), url


def test_api_refuses_a_redirect_to_the_forged_host(app, client, figures):
    create_user(app)
    headers = {**bearer(issue_token(client)), **FORGED}
    for field in ("successUrl", "cancelUrl"):
        body = {"planId": "starter", field: "https://evil.example/collect"}
        response = client.post("/api/v1/subscriptions/checkout", json=body, headers=headers)
        error = (response.get_json() or {}).get("error", {})
        assert figures.attack(HOSTS, refused=error.get("code") == "invalid_redirect_url"), field


def test_api_portal_with_a_forged_host_returns_to_the_site(app, client, figures):
    create_user(app)
    auth = AuthActions(app, client)
    auth.login()
    subscribe(client, "starter")
    headers = {**bearer(issue_token(client)), **FORGED}
    response = client.post("/api/v1/subscriptions/portal", json={}, headers=headers)
    assert response.status_code == 200, response.get_json()
    portal_url = response.get_json()["url"]
    assert figures.attack(HOSTS, refused=on_site(portal_url)), portal_url
    page = client.get(urlsplit(portal_url).path, headers=FORGED)
    assert figures.attack(HOSTS, refused=b"evil.example" not in page.data)


def test_web_checkout_and_portal_with_a_forged_host_stay_on_the_site(app, client, figures):
    create_user(app)
    AuthActions(app, client).login()
    token = csrf_token(client, "/pricing")
    # The member's own session, sent with a forged Host (a proxy or cache that passes it on).
    client.set_cookie("session", client.get_cookie("session").value, domain="evil.example")
    started = client.post(
        "/checkout",
        data={"plan": "starter", "cycle": "monthly", "csrf_token": token},
        headers=FORGED,
    )
    assert started.status_code == 303, started.get_data(as_text=True)
    hosted = started.headers["Location"]
    assert figures.attack(HOSTS, refused=on_site(hosted)), hosted
    session_id = next(part for part in urlsplit(hosted).path.split("/") if part.startswith("cs_"))
    session = checkout_session(app, session_id)
    for url in (session.success_url, session.cancel_url):
        assert figures.attack(HOSTS, refused=on_site(url)), url
    portal = client.post("/billing/portal", data={"csrf_token": token}, headers=FORGED)
    assert portal.status_code == 303, portal.get_data(as_text=True)
    assert figures.attack(HOSTS, refused=on_site(portal.headers["Location"]))
    page = client.get(urlsplit(portal.headers["Location"]).path, headers=FORGED)
    assert figures.attack(HOSTS, refused=b"evil.example" not in page.data)


@pytest.mark.parametrize(
    "config_overrides",
    [
        {
            "TRUSTED_HOSTS": ["localhost", ".llmgen.example"],
            "SECRET_KEY": "k" * 40,
            "JWT_SECRET": "t" * 40,
        }
    ],
)
def test_trusted_hosts_refuse_any_other_host(client, figures):
    assert client.get("/pricing").status_code == 200
    assert client.get("/pricing", headers={"Host": "www.llmgen.example"}).status_code == 200
    for host in ("evil.example", "localhost.evil.example", "llmgen.example.evil.example"):
        response = client.get("/pricing", headers={"Host": host})
        assert figures.attack(HOSTS, refused=response.status_code == 400), host


def test_production_sets_trusted_hosts_from_the_public_base_url():
    config = Config(SAFE_PRODUCTION)
    config.validate()
    assert config.TRUSTED_HOSTS == ["llmgen.example"]


# --- 4. Only known environments; development secrets on loopback only -------------------------


@pytest.mark.parametrize(
    "name", ["Production", "PRODUCTION", "prod", "production ", "staging", "live", ""]
)
def test_an_unknown_app_env_refuses_to_start(name, figures):
    with pytest.raises(ConfigError, match="APP_ENV") as refused:
        create_app(Config({**SAFE_PRODUCTION, "APP_ENV": name}))
    assert figures.attack(ENVIRONMENTS, refused=refused.value is not None)


def test_known_environments_are_exactly_three():
    for name in ("development", "test", "production"):
        Config({**SAFE_PRODUCTION, "APP_ENV": name}).validate()


@pytest.mark.parametrize(
    "environ",
    [
        {"HTTP_HOST": "evil.example"},
        {"HTTP_HOST": "llmgen.example"},
        {"REMOTE_ADDR": "203.0.113.9"},
        {"REMOTE_ADDR": "10.0.0.2", "HTTP_HOST": "10.0.0.1:5000"},
    ],
)
@with_development_secrets
def test_development_secrets_serve_loopback_requests_only(app, client, environ, figures):
    assert client.get("/pricing").status_code == 200  # 127.0.0.1 asking for localhost
    for path in ("/pricing", "/admin/", "/sandbox/control/clock"):
        response = client.get(path, environ_overrides=environ)
        refused = response.status_code == 403 and b"development secrets" in response.data
        assert figures.attack(ENVIRONMENTS, refused=refused), (path, environ)


@with_development_secrets
def test_loopback_addresses_of_every_kind_are_served(app, client):
    for environ in (
        {"REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:5000"},
        {"REMOTE_ADDR": "::1", "HTTP_HOST": "[::1]:5000"},
        {"REMOTE_ADDR": "127.0.0.5", "HTTP_HOST": "localhost:8000"},
    ):
        assert client.get("/pricing", environ_overrides=environ).status_code == 200, environ


# --- 5. Production settings that are refused, and one that is shouted about ---------------------


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"SESSION_COOKIE_SECURE": "false"}, "SESSION_COOKIE_SECURE"),
        ({"SESSION_COOKIE_SECURE": ""}, "SESSION_COOKIE_SECURE"),
        ({"JWT_SECRET": "s" * 40}, "JWT_SECRET"),
        ({"STRIPE_WEBHOOK_SECRET": "not-a-webhook-secret"}, "whsec_"),
        ({"STRIPE_WEBHOOK_SECRET": "whsec_new,oops"}, "whsec_"),
        ({"PUBLIC_BASE_URL": "ftp://llmgen.example"}, "PUBLIC_BASE_URL"),
        ({"PUBLIC_BASE_URL": "http://llmgen.example"}, "PUBLIC_BASE_URL"),
        ({"PUBLIC_BASE_URL": "https://llmgen.example/shop?x=1"}, "PUBLIC_BASE_URL"),
        ({"ALLOWED_REDIRECT_HOSTS": ""}, "ALLOWED_REDIRECT_HOSTS"),
    ],
)
def test_production_refuses_weak_settings(change, complaint, figures):
    with pytest.raises(ConfigError, match=complaint) as refused:
        Config({**SAFE_PRODUCTION, **change}).validate()
    assert figures.attack(ENVIRONMENTS, refused=refused.value is not None)


def test_production_with_a_test_mode_key_starts_but_says_so_loudly(capfd, figures):
    app = create_app(Config({**SAFE_PRODUCTION, "STRIPE_SECRET_KEY": "sk_test_example"}))
    logged = capfd.readouterr().err
    loud = any("WARNING" in line and "TEST MODE" in line for line in logged.splitlines())
    assert figures.attack(ENVIRONMENTS, refused=loud), logged
    assert app.config["STRIPE_SECRET_KEY"] == "sk_test_example"


@pytest.mark.parametrize("config_overrides", [{"PUBLIC_BASE_URL": "https://localhost"}])
def test_hsts_when_the_site_is_https_even_without_forwarded_proto(client, figures):
    # The proxy terminated TLS but sent no X-Forwarded-Proto: the request looks like plain HTTP.
    response = client.get("/pricing")
    hsts = response.headers.get("Strict-Transport-Security", "")
    assert figures.attack(ENVIRONMENTS, refused=hsts.startswith("max-age="))


def test_no_hsts_on_a_plain_http_site(client):
    assert "Strict-Transport-Security" not in client.get("/pricing").headers


def test_private_pages_are_never_stored_by_a_cache(app, client, figures):
    create_user(app, role="admin")
    auth = AuthActions(app, client)
    assert "no-store" in client.get("/login").headers.get("Cache-Control", "")
    auth.login()
    api = bearer(issue_token(client))
    private = [
        client.get("/account"),
        client.get("/admin/"),
        client.get("/pricing"),  # shows the member's own plan
        client.get("/api/v1/subscriptions/current", headers=api),
        client.get("/api/v1/credits/balance", headers=api),
    ]
    for response in private:
        stored = "no-store" not in response.headers.get("Cache-Control", "")
        assert figures.attack(ENVIRONMENTS, refused=not stored), response.request.path
