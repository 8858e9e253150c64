"""API compatibility: every request/response example of API.md's subscriptions, credits, auth and
API-key sections replayed over HTTP against the running site (werkzeug on a free port, the real
app, webhooks from the sandbox in the background), in both flavours, field by field.

The ```json examples are read from API.md by section heading, so a changed example changes the
test; shapes API.md gives inline are written out below, each under the line it quotes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.api.api_md import assert_like_api_md, json_example, json_examples
from tests.conftest import create_user
from tests.e2e.conftest import live_server  # noqa: F401  (the e2e suite's running site)
from tests.sandbox.helpers import CSRF_RE

SERVICE_TOKEN = "service-token-for-the-compat-test-0123456789"
EMAIL, PASSWORD = "ada@example.com", "correct horse battery"

# API.md "Catalog figures from the public documentation": `professional`: 3,000 credits a month,
# 1299 cents a month. Fields holding those figures must have the example's value, not just type.
PLAN_EXACT = frozenset({"plan.id", "plan.name", "plan.monthlyCredits", "plan.priceCents"})
CURRENT_EXACT = frozenset(
    {
        "subscription.plan",
        "subscription.status",
        "subscription.billingCycle",
        "subscription.cancelAtPeriodEnd",
        "planDetails.id",
        "planDetails.name",
        "planDetails.monthlyCredits",
        "planDetails.price",
    }
)

# --- inline shapes of API.md, each under the line it quotes ----------------------------------

# "Without a subscription: `hasSubscription: false`, `subscription: null`, `planDetails: null`."
NO_SUBSCRIPTION = {"hasSubscription": False, "subscription": None, "planDetails": None}
# "Body: `{"returnUrl": "…"}` (optional; default: the account dashboard). Response: `{"url": "…"}`."
PORTAL = {"url": "https://…"}
# "Every error is JSON: `{"error": {"code": "invalid_plan", "message": "…"}}`"
ERROR = {"error": {"code": "invalid_plan", "message": "…"}}
# "Response: `{"transactions": [{id, type, amount, description, siteId, createdAt}], "total": 47,
# "hasMore": true}`" (field types as in the balance example; siteId: "null except on usage")
HISTORY_FIELDS = ["id", "type", "amount", "description", "siteId", "createdAt"]
HISTORY = {
    "transactions": [
        {
            "id": "txn_…",
            "type": "usage",
            "amount": -50,
            "description": "…",
            "siteId": None,
            "createdAt": "2026-01-20T14:30:00Z",
        }
    ],
    "total": 47,
    "hasMore": True,
}
# "`{userId, amount, description, siteId?, idempotencyKey}` → 200 with the new balance, or 402
# `{"error": {"code": "insufficient_credits", …}, "balance": …, "needed": …}`"
# "`{"packages": [{"id": "pkg_pro", "name": "Pro Pack", "credits": 500, "priceCents": 1999}]}`"
PACKAGES = {"packages": [{"id": "pkg_pro", "name": "Pro Pack", "credits": 500, "priceCents": 1999}]}
# "Response 200: `{"sessionId": "cs_…", "url": "…", "package": {"id", "name", "credits",
# "priceCents"}}`" (field types as in the packages example)
PACK_CHECKOUT = {
    "sessionId": "cs_…",
    "url": "https://…",
    "package": {"id": "pkg_pro", "name": "Pro Pack", "credits": 500, "priceCents": 1999},
}
PACK_EXACT = frozenset({"package.id", "package.name", "package.credits", "package.priceCents"})
USAGE_OK = {"balance": 450}
USAGE_REFUSED = {
    "error": {"code": "insufficient_credits", "message": "…"},
    "balance": 0,
    "needed": 1,
}
# "`POST /auth/login` `{email, password}` → 200 `{"success": true, "message": "…", "user": {"id",
# "email", "name", "emailVerified", "updatedAt"}, "tokens": {"accessToken", "refreshToken",
# "expiresIn": 900, "tokenType": "Bearer"}}`" (the id a string; the site keeps no names, so name
# is null; updatedAt an ISO 8601 Z timestamp like every other timestamp of API.md)
TOKENS = {"accessToken": "…", "refreshToken": "…", "expiresIn": 900, "tokenType": "Bearer"}
LOGIN = {
    "success": True,
    "message": "…",
    "user": {
        "id": "…",
        "email": EMAIL,
        "name": None,
        "emailVerified": True,
        "updatedAt": "2026-01-15T10:00:00Z",
    },
    "tokens": TOKENS,
}
# "`POST /auth/refresh` `{refreshToken}` → 200 `{"success": true, "message": "…", "tokens":
# {…same…}}`"
REFRESH = {"success": True, "message": "…", "tokens": TOKENS}
TOKENS_EXACT = frozenset({"success", "tokens.expiresIn", "tokens.tokenType", "user.email"})
# "`GET /api-keys` → `{"apiKeys": [{id, name, description, keyPreview, scopes, isActive,
# lastUsedAt, expiresAt, createdAt}], "total": n}`"
API_KEY = {
    "id": "…",
    "name": "…",
    "description": None,
    "keyPreview": "…",
    "scopes": ["full"],
    "isActive": True,
    "lastUsedAt": None,
    "expiresAt": None,
    "createdAt": "2026-01-15T10:00:00Z",
}
API_KEYS = {"apiKeys": [API_KEY], "total": 1}
# "`POST /api-keys` `{name, description?, scopes?, expiresAt?}` → 201 `{"apiKey": {…, "key":
# "llmgen_…"}, "warning": "shown once"}`"
NEW_API_KEY = {"apiKey": API_KEY | {"key": "llmgen_…"}, "warning": "…"}


@pytest.fixture
def config_overrides() -> dict[str, str]:
    return {"CREDITS_SERVICE_TOKEN": SERVICE_TOKEN}


@dataclass
class Site:
    """The running site as an integrator sees it: one flavour of credential, over HTTP."""

    url: str
    suffix: str  # "" with a JWT, "/api" with an API key
    headers: dict[str, str]
    user_id: int

    def call(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        response = requests.request(
            method,
            f"{self.url}/api/v1{path}{self.suffix}",
            headers=self.headers,
            timeout=15,
            **kwargs,
        )
        assert response.status_code == status, (method, path, response.status_code, response.text)
        assert response.headers["Content-Type"].startswith("application/json"), response.text[:200]
        return response.json()


def login(url: str) -> dict[str, Any]:
    body = {"email": EMAIL, "password": PASSWORD}
    response = requests.post(f"{url}/api/v1/auth/login", json=body, timeout=15)
    assert response.status_code == 200, response.text
    return response.json()


def new_api_key(url: str, jwt: str) -> dict[str, Any]:
    response = requests.post(
        f"{url}/api/v1/api-keys",
        json={"name": "compat"},
        headers={"Authorization": f"Bearer {jwt}"},
        timeout=15,
    )
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(params=["jwt", "api_key"])
def site(request: pytest.FixtureRequest, live_server) -> Iterator[Site]:  # noqa: F811
    user_id = create_user(live_server.app, email=EMAIL, password=PASSWORD)
    jwt = login(live_server.url)["tokens"]["accessToken"]
    if request.param == "jwt":
        yield Site(live_server.url, "", {"Authorization": f"Bearer {jwt}"}, user_id)
    else:
        key = new_api_key(live_server.url, jwt)["apiKey"]["key"]
        yield Site(live_server.url, "/api", {"Authorization": f"Bearer {key}"}, user_id)


def pay_on_hosted_page(checkout_url: str, site_url: str) -> None:
    """Pay as a person would on the sandbox's hosted checkout page of the running site."""
    browser = requests.Session()
    page_url = site_url + urlsplit(checkout_url).path
    page = browser.get(page_url, timeout=15)
    token = CSRF_RE.search(page.text)
    assert token, f"no CSRF token on {page_url}"
    card = {"card_number": "4242 4242 4242 4242", "expiry": "12 / 34", "cvc": "123"}
    paid = browser.post(
        page_url, data={"csrf_token": token.group(1), **card}, allow_redirects=False, timeout=15
    )
    assert paid.status_code in (302, 303), paid.text[:300]


def wait_for(read: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 15.0) -> Any:
    """Webhooks arrive in the background, as from Stripe: poll the API until they have."""
    deadline = time.monotonic() + timeout
    while not done(value := read()):
        assert time.monotonic() < deadline, f"timed out; last: {value}"
        time.sleep(0.2)
    return value


def use_credits(site: Site, amount: int, key: str, status: int = 200) -> Any:
    body = {
        "userId": site.user_id,
        "amount": amount,
        "description": f"job {key}",
        "idempotencyKey": key,
    }
    response = requests.post(
        f"{site.url}/api/v1/credits/usage",
        json=body | {"siteId": "example.com"},
        headers={"Authorization": f"Bearer {SERVICE_TOKEN}"},
        timeout=15,
    )
    assert response.status_code == status, response.text
    return response.json()


# --- examples that need only a signed-in caller ----------------------------------------------


@dataclass(frozen=True)
class Replay:
    heading: str  # the API.md section whose example this is
    method: str
    path: str
    body: dict[str, Any] | None
    status: int
    example: Callable[[], Any]  # API.md's example (read from the file for ```json blocks)
    exact: frozenset[str] = frozenset()


REPLAYS = [
    Replay(
        "POST /subscriptions/checkout",
        "POST",
        "/subscriptions/checkout",
        {"planId": "professional"},
        200,
        lambda: json_example("POST /subscriptions/checkout"),
        PLAN_EXACT,
    ),
    Replay(
        "Error body",
        "POST",
        "/subscriptions/checkout",
        {"planId": "gold"},
        400,
        lambda: ERROR,
        frozenset({"error.code"}),
    ),
    Replay(
        "GET /subscriptions/current",
        "GET",
        "/subscriptions/current",
        None,
        200,
        lambda: NO_SUBSCRIPTION,
        frozenset({"hasSubscription"}),
    ),
    Replay("GET /credits/packages", "GET", "/credits/packages", None, 200, lambda: PACKAGES),
    Replay(
        "POST /credits/checkout",
        "POST",
        "/credits/checkout",
        {"packageId": "pkg_pro"},
        200,
        lambda: PACK_CHECKOUT,
        PACK_EXACT,
    ),
]


@pytest.mark.parametrize("replay", REPLAYS, ids=lambda replay: replay.heading)
def test_replays_example(site: Site, replay: Replay) -> None:
    kwargs = {} if replay.body is None else {"json": replay.body}
    body = site.call(replay.method, replay.path, replay.status, **kwargs)
    assert_like_api_md(body, replay.example(), exact=replay.exact)


def test_checkout_url_carries_the_session(site: Site) -> None:
    """API.md: `"url": "https://checkout.stripe.com/c/pay/cs_test_…"`: the session's own page."""
    body = site.call("POST", "/subscriptions/checkout", json={"planId": "professional"})
    assert body["sessionId"] in body["url"]


def test_current_portal_balance_history_usage_after_paying(site: Site) -> None:
    """Subscribe to professional through Checkout on the sandbox, then every read-back example."""
    started = site.call("POST", "/subscriptions/checkout", json={"planId": "professional"})
    pay_on_hosted_page(started["url"], site.url)

    current = wait_for(
        lambda: site.call("GET", "/subscriptions/current"), lambda b: b["hasSubscription"]
    )
    assert_like_api_md(current, json_example("GET /subscriptions/current"), exact=CURRENT_EXACT)

    portal = site.call("POST", "/subscriptions/portal", json={})
    assert_like_api_md(portal, PORTAL)

    balance = wait_for(lambda: site.call("GET", "/credits/balance"), lambda b: b["balance"] > 0)
    used = use_credits(site, 50, "gen-1")
    assert_like_api_md(used, USAGE_OK)
    assert used["balance"] == balance["balance"] - 50 == 3000 - 50  # API.md: 3,000 a month
    refused = use_credits(site, 10_000, "gen-2", status=402)
    assert_like_api_md(refused, USAGE_REFUSED, exact=frozenset({"error.code"}))

    balance = site.call("GET", "/credits/balance")
    assert_like_api_md(balance, json_example("GET /credits/balance"))
    assert [row["type"] for row in balance["recentTransactions"]] == ["usage", "purchase"]

    history = site.call("GET", "/credits/history")
    assert_like_api_md(history, HISTORY)
    for row in history["transactions"]:
        assert sorted(row) == sorted(HISTORY_FIELDS), "the documented fields, no more"
    assert history["transactions"][0]["siteId"] == "example.com"


def test_error_body_for_a_missing_credential(site: Site) -> None:
    """API.md: 401 for a missing or invalid credential, with the same error body."""
    site.headers = {}
    body = site.call("GET", "/subscriptions/current", 401)
    assert_like_api_md(body, ERROR)


def test_portal_without_a_billing_account_is_a_400_error(site: Site) -> None:
    body = site.call("POST", "/subscriptions/portal", 400, json={})
    assert_like_api_md(body, ERROR)


def test_login_and_refresh_shapes(live_server) -> None:  # noqa: F811
    create_user(live_server.app, email=EMAIL, password=PASSWORD)
    logged_in = login(live_server.url)
    assert_like_api_md(logged_in, LOGIN, exact=TOKENS_EXACT)
    refreshed = requests.post(
        f"{live_server.url}/api/v1/auth/refresh",
        json={"refreshToken": logged_in["tokens"]["refreshToken"]},
        timeout=15,
    )
    assert refreshed.status_code == 200, refreshed.text
    assert_like_api_md(refreshed.json(), REFRESH, exact=TOKENS_EXACT)


def test_api_key_shapes(live_server) -> None:  # noqa: F811
    create_user(live_server.app, email=EMAIL, password=PASSWORD)
    jwt = login(live_server.url)["tokens"]["accessToken"]
    created = new_api_key(live_server.url, jwt)
    assert_like_api_md(created, NEW_API_KEY)
    listed = requests.get(
        f"{live_server.url}/api/v1/api-keys",
        headers={"Authorization": f"Bearer {jwt}"},
        timeout=15,
    )
    assert listed.status_code == 200, listed.text
    assert_like_api_md(listed.json(), API_KEYS, exact=frozenset({"total"}))


# Sections of API.md with a ```json example, and the test that replays each. A new example in
# API.md fails here until a test replays it (the credit-pack sections join with issue-packs).
REPLAYED_JSON_SECTIONS = {
    "POST /subscriptions/checkout": test_replays_example,
    "GET /subscriptions/current": test_current_portal_balance_history_usage_after_paying,
    "GET /credits/balance": test_current_portal_balance_history_usage_after_paying,
}


def test_every_json_example_of_api_md_is_replayed() -> None:
    headings = json_examples()
    for heading in headings:
        assert any(heading.startswith(name) for name in REPLAYED_JSON_SECTIONS), (
            f"API.md section {heading!r} has a JSON example no test replays"
        )
    assert len(headings) == len(REPLAYED_JSON_SECTIONS), headings
