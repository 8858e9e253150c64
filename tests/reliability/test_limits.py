"""Limits, reused checkouts, weak passwords, form targets: the smaller holes of issue 13."""

from __future__ import annotations

import pytest

from tests.conftest import create_user, sql
from tests.reliability.conftest import in_threads
from webapp.api import keys

GROUP = "limits, reused checkouts, weak passwords, form targets"


@pytest.mark.postgres
def test_the_api_key_limit_holds_under_concurrent_requests(app, figures):
    user_id = create_user(app)

    def create(index: int):
        def call() -> bool:
            with app.app_context():
                try:
                    keys.create_key(user_id, f"key {index}")
                except keys.TooManyKeys:
                    return False
                return True

        return call

    created = in_threads([create(index) for index in range(30)], workers=30)
    [(active,)] = sql(app, "select count(*) from api_keys where revoked_at is null")
    for _ in range(30 - keys.MAX_ACTIVE_KEYS_PER_USER):
        figures.attack(GROUP, refused=active <= keys.MAX_ACTIVE_KEYS_PER_USER)
    assert active == keys.MAX_ACTIVE_KEYS_PER_USER
    assert created.count(True) == keys.MAX_ACTIVE_KEYS_PER_USER


def api_checkout(client, token, **urls):
    body = {"planId": "professional", "billingCycle": "monthly", **urls}
    response = client.post(
        "/api/v1/subscriptions/checkout", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()["sessionId"]


def test_a_reused_checkout_never_ignores_new_return_urls(app, figures):
    app.config["ALLOWED_REDIRECT_HOSTS"] = ["partner.example"]
    create_user(app)
    client = app.test_client()
    token = client.post(
        "/api/v1/auth/token", json={"email": "ada@example.com", "password": "correct horse battery"}
    ).get_json()["accessToken"]
    first_urls = {
        "successUrl": "https://partner.example/done",
        "cancelUrl": "https://partner.example/back",
    }
    first = api_checkout(client, token, **first_urls)
    assert api_checkout(client, token, **first_urls) == first  # a double click reuses it
    for urls in (
        {**first_urls, "successUrl": "https://partner.example/elsewhere"},
        {**first_urls, "cancelUrl": "https://partner.example/other-back"},
    ):
        previous = sql(app, "select stripe_session_id from checkout_sessions where status='open'")
        session_id = api_checkout(client, token, **urls)
        with app.app_context():
            from webapp.stripe_gateway import get_gateway

            session = get_gateway().retrieve_checkout_session(session_id)
        follows = (session.success_url, session.cancel_url) == (
            urls["successUrl"],
            urls["cancelUrl"],
        )
        assert figures.attack(GROUP, refused=follows and [(session_id,)] != previous)
    assert sql(app, "select count(*) from checkout_sessions where status = 'open'") == [(1,)]
    assert sql(app, "select count(*) from checkout_sessions where status = 'expired'") == [(2,)]
