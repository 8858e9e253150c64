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


WEAK_PASSWORDS = [
    "1234567890",
    "0123456789",
    "password123",
    "qwertyuiop",
    "iloveyou123",
    "abcdefghij",
    "aaaaaaaaaa",
    "Password1!",
    "ada@example.com",
    "adaadaada1",
]


@pytest.mark.parametrize("password", WEAK_PASSWORDS)
def test_sign_up_refuses_common_and_breached_passwords(app, figures, password):
    from tests.conftest import AuthActions

    response = AuthActions(app, app.test_client()).signup("ada@example.com", password)
    refused = response.status_code == 400 and "too easy to guess" in response.get_data(True)
    assert figures.attack(GROUP, refused=refused), response.status_code
    assert sql(app, "select count(*) from users") == [(0,)]


def test_the_user_command_refuses_a_common_password(app, figures):
    args = ["users", "create", "--email", "ada@example.com"]
    result = app.test_cli_runner().invoke(args=args, input="1234567890\n")
    assert figures.attack(GROUP, refused=result.exit_code != 0), result.output
    assert "too easy to guess" in result.output


def form_action(response) -> list[str]:
    csp = response.headers["Content-Security-Policy"]
    [directive] = [part.strip() for part in csp.split(";") if "form-action" in part]
    return directive.split()[1:]


def test_forms_may_only_target_our_site_and_stripes_hosted_pages(database_url, figures):
    from tests.conftest import make_app

    sandboxed = make_app(database_url, ALLOWED_REDIRECT_HOSTS=["partner.example"])
    real = make_app(database_url, STRIPE_SECRET_KEY="sk_test_limits", STRIPE_API_BASE="")
    targets = {
        "sandbox site": form_action(sandboxed.test_client().get("/pricing")),
        "real site": form_action(real.test_client().get("/pricing")),
        "sandbox hosted page": form_action(sandboxed.test_client().get("/sandbox/checkout/x")),
    }
    assert targets == {
        "sandbox site": ["'self'"],  # the sandbox's Checkout and portal are on our own origin
        "real site": ["'self'", "https://checkout.stripe.com", "https://billing.stripe.com"],
        # After paying, the sandbox's hosted page returns to the session's successUrl.
        "sandbox hosted page": ["'self'", "https://partner.example", "http://partner.example"],
    }
    for sources in targets.values():
        # No bare scheme (`http:`, `https:`) and no wildcard: any origin would match them.
        assert figures.attack(GROUP, refused=not {"http:", "https:", "*"} & set(sources))
