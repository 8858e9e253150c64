"""`GET /credits/packages` and `POST /credits/checkout` (API.md), both flavours, against the
sandbox through the real SDK; every response checked against the OpenAPI document."""

from __future__ import annotations

import pytest

from tests.api.conftest import assert_conforms
from tests.billing_helpers import pay
from tests.conftest import sql
from webapp.stripe_gateway import get_gateway


def packages(client, caller):
    return client.get(caller.path("/credits/packages"), headers=caller.headers)


def checkout(client, caller, **body):
    return client.post(caller.path("/credits/checkout"), headers=caller.headers, json=body)


def test_packages_list_the_catalogs_packs(client, caller):
    response = packages(client, caller)
    assert response.status_code == 200
    body = assert_conforms(response, "GET", "/credits/packages" + caller.suffix)
    assert body["packages"][1] == {
        "id": "pkg_pro",
        "name": "Pro Pack",
        "credits": 500,
        "priceCents": 1999,
    }
    assert [p["id"] for p in body["packages"]] == ["pkg_starter", "pkg_pro", "pkg_business"]


def test_checkout_without_a_subscription_has_the_documented_shape(app, client, caller, user_id):
    response = checkout(client, caller, packageId="pkg_pro")
    assert response.status_code == 200
    body = assert_conforms(response, "POST", "/credits/checkout" + caller.suffix)
    assert body["sessionId"].startswith("cs_") and body["url"].startswith("http")
    assert body["package"] == {
        "id": "pkg_pro",
        "name": "Pro Pack",
        "credits": 500,
        "priceCents": 1999,
    }
    with app.app_context():
        session = get_gateway().retrieve_checkout_session(body["sessionId"])
        assert (session.mode, session.amount_total) == ("payment", 1999)
        assert session.invoice_creation.enabled is True
        # Defaults: back to the account dashboard with an indicator.
        assert session.success_url == "http://localhost/account?credits=purchased"
        assert session.cancel_url == "http://localhost/account?credits=canceled"


def test_paying_the_apis_checkout_grants_the_credits_once(app, client, caller, user_id):
    body = checkout(client, caller, packageId="pkg_starter").get_json()
    assert pay(client, body["url"]).status_code == 303
    rows = sql(app, "select amount, type, grant_key from credit_entries")
    assert rows == [(100, "purchase", f"pack:{body['sessionId']}")]
    balance = client.get(caller.path("/credits/balance"), headers=caller.headers).get_json()
    assert (balance["balance"], balance["totalPurchased"]) == (100, 100)
    history = client.get(
        caller.path("/credits/history") + "?type=purchase", headers=caller.headers
    ).get_json()
    assert [t["description"] for t in history["transactions"]] == ["Starter Pack"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"packageId": "pkg_gold"}, "invalid_package"),
        ({"packageId": "professional"}, "invalid_package"),
        ({}, "validation_error"),
        ({"packageId": 5}, "validation_error"),
        ({"packageId": "pkg_pro", "extra": 1}, "validation_error"),
        ({"packageId": "pkg_pro", "successUrl": "https://evil.example/x"}, "invalid_redirect_url"),
        ({"packageId": "pkg_pro", "cancelUrl": "javascript:alert(1)"}, "invalid_redirect_url"),
    ],
)
def test_checkout_refuses_bad_requests(app, client, caller, body, code):
    response = checkout(client, caller, **body)
    assert response.status_code == 400
    assert (
        assert_conforms(response, "POST", "/credits/checkout" + caller.suffix)["error"]["code"]
        == code
    )
    assert sql(app, "select count(*) from checkout_sessions")[0][0] == 0


def test_checkout_accepts_the_sites_own_redirects(app, client, caller):
    response = checkout(
        client,
        caller,
        packageId="pkg_pro",
        successUrl="http://localhost/done?session_id={CHECKOUT_SESSION_ID}",
        cancelUrl="http://localhost/back",
    )
    assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize("path", ["/credits/packages", "/credits/checkout"])
@pytest.mark.parametrize("suffix", ["", "/api"])
def test_both_need_a_credential(client, path, suffix):
    method = client.get if path.endswith("packages") else client.post
    response = method(f"/api/v1{path}{suffix}", json={"packageId": "pkg_pro"})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"]
