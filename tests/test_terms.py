"""The terms and privacy pages, and consent to the terms at Checkout (`consent_collection`)
through the site: the session Stripe holds asks for it, the confirm page says so, and the
buyer's acceptance is recorded once on their checkout row, whichever of the success page and
the webhook sees it first."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.billing_helpers import VISA_OK, start_checkout
from tests.conftest import csrf_token, sql
from webapp.catalog import get_catalog, get_checkout_options
from webapp.legal.views import FAQ_OPENING
from webapp.markup import render_markdown
from webapp.stripe_gateway import get_gateway

CONSENT_ON = {"CHECKOUT_OVERRIDES": {"CHECKOUT_CONSENT_COLLECTION": "true"}}


def session_id_of(started) -> str:
    return started.headers["Location"].rstrip("/").rsplit("/", 1)[-1]


def pay_hosted(client: FlaskClient, checkout_url: str, **extra: str):
    path = urlsplit(checkout_url).path
    data = {"csrf_token": csrf_token(client, path), "card_number": VISA_OK}
    data.update(expiry="12 / 34", cvc="123", **extra)
    return client.post(path, data=data)


# --- the pages ---------------------------------------------------------------------------------


def test_terms_page_states_the_catalog_and_the_policy(app: Flask, client: FlaskClient) -> None:
    response = client.get("/terms")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert '<h1 id="page-title">Terms of Service</h1>' in html
    assert "Last updated" in html
    # Every plan with its prices and monthly credits, from the catalog.
    for name, credits, monthly, yearly in (
        ("Starter", "1,000", "$4.99", "$49.90"),
        ("Agency", "30,000", "$99.99", "$999.90"),
    ):
        row = re.search(rf"<th scope=\"row\">{name}</th>(.*?)</tr>", html, re.S)
        assert row, name
        assert [credits, monthly, yearly] == re.findall(r"<td>([^<]+)</td>", row.group(1))
    with app.app_context():
        answer = get_catalog().policy.change_answer()
        assert answer.startswith(FAQ_OPENING)
        assert str(render_markdown(answer.removeprefix(FAQ_OPENING))) in html
    assert "Credits never expire" in html
    assert "keeps working for\n    7 days" in html  # PAST_DUE_GRACE_DAYS
    assert 'href="/privacy"' in html


@pytest.mark.parametrize("config_overrides", [{"PAST_DUE_GRACE_DAYS": 1}])
def test_terms_follow_the_grace_period_setting(client: FlaskClient) -> None:
    assert "keeps working for\n    1 day while" in client.get("/terms").get_data(as_text=True)


def test_privacy_page_and_the_footer_links(client: FlaskClient) -> None:
    privacy = client.get("/privacy")
    assert privacy.status_code == 200
    assert "Privacy Policy" in privacy.get_data(as_text=True)
    for path in ("/pricing", "/terms", "/login", "/signup"):
        html = client.get(path).get_data(as_text=True)
        footer = html[html.index('<footer class="site-footer">') :]
        assert 'href="/terms">Terms of Service</a>' in footer, path
        assert 'href="/privacy">Privacy Policy</a>' in footer, path


def test_sign_up_links_the_terms(client: FlaskClient) -> None:
    html = client.get("/signup").get_data(as_text=True)
    form = html[html.index("<form") : html.index("</form>")]
    assert "By signing up you agree to our" in form and 'href="/terms"' in form


# --- consent at Checkout -----------------------------------------------------------------------


def test_off_in_test_and_production_on_in_development(app: Flask) -> None:
    settings = app.extensions["catalog"].checkout
    assert settings["development"].consent_collection is True
    assert settings["test"].consent_collection is False
    assert settings["production"].consent_collection is False
    with app.app_context():
        assert get_checkout_options().consent_collection is False


def test_off_the_session_asks_for_nothing_and_nothing_is_recorded(
    app: Flask, auth, client: FlaskClient, user_id: int
) -> None:
    auth.login()
    started = start_checkout(client)
    with app.app_context():
        session = get_gateway().retrieve_checkout_session(session_id_of(started))
    assert session.consent_collection is None
    assert pay_hosted(client, started.headers["Location"]).status_code == 303
    client.get(f"/checkout/success?session_id={session.id}")
    assert sql(app, "select status, terms_accepted_at from checkout_sessions") == [
        ("complete", None)
    ]


@pytest.mark.parametrize("config_overrides", [CONSENT_ON])
def test_on_the_session_asks_for_consent_linking_our_terms(
    app: Flask, auth, client: FlaskClient, user_id: int
) -> None:
    auth.login()
    started = start_checkout(client)
    with app.app_context():
        session = get_gateway().retrieve_checkout_session(session_id_of(started))
    assert session.consent_collection.terms_of_service == "required"
    terms_url = app.config["PUBLIC_BASE_URL"] + "/terms"
    assert session.custom_text.terms_of_service_acceptance.message == (
        f"I agree to the LLMGen [Terms of Service]({terms_url})."
    )


@pytest.mark.parametrize("config_overrides", [CONSENT_ON])
def test_the_confirm_page_mentions_the_terms(auth, client: FlaskClient, user_id: int) -> None:
    auth.login()
    html = client.get("/signup?plan=professional&cycle=monthly").get_data(as_text=True)
    assert "Continue to checkout" in html
    notice = re.search(r'data-testid="terms-notice">(.*?)</p>', html, re.S)
    assert notice and 'href="/terms">Terms of Service</a>' in notice.group(1)


def test_the_confirm_page_says_nothing_of_terms_when_off(
    auth, client: FlaskClient, user_id: int
) -> None:
    auth.login()
    html = client.get("/signup?plan=professional&cycle=monthly").get_data(as_text=True)
    assert "Continue to checkout" in html and "terms-notice" not in html


@pytest.mark.parametrize("config_overrides", [CONSENT_ON])
def test_acceptance_is_recorded_once(app: Flask, auth, client: FlaskClient, user_id: int) -> None:
    """The webhook (delivered in process) and the success page both see the accepted session;
    the first stamps the time and the second leaves it."""
    auth.login()
    started = start_checkout(client)
    refused = pay_hosted(client, started.headers["Location"])
    assert refused.status_code == 400
    assert sql(app, "select status, terms_accepted_at from checkout_sessions") == [("open", None)]
    assert sql(app, "select count(*) from subscriptions") == [(0,)]

    paid = pay_hosted(client, started.headers["Location"], accept_terms="y")
    assert paid.status_code == 303, paid.get_data(as_text=True)[:2000]
    session_id = parse_qs(urlsplit(paid.headers["Location"]).query)["session_id"][0]
    # The checkout.session.completed webhook (delivered in process) was first.
    [(status, first)] = sql(app, "select status, terms_accepted_at from checkout_sessions")
    assert status == "complete" and first is not None
    assert client.get(f"/checkout/success?session_id={session_id}").status_code == 200
    assert sql(app, "select terms_accepted_at from checkout_sessions") == [(first,)]
    assert sql(app, "select sum(amount) from credit_entries") == [(3000,)]


@pytest.mark.parametrize("config_overrides", [{**CONSENT_ON, "SANDBOX_DELIVER_TO_SELF": False}])
def test_the_success_page_records_it_when_the_webhook_is_late(
    app: Flask, auth, client: FlaskClient, user_id: int
) -> None:
    auth.login()
    started = start_checkout(client)
    paid = pay_hosted(client, started.headers["Location"], accept_terms="y")
    session_id = parse_qs(urlsplit(paid.headers["Location"]).query)["session_id"][0]
    assert sql(app, "select terms_accepted_at from checkout_sessions") == [(None,)]
    assert client.get(f"/checkout/success?session_id={session_id}").status_code == 200
    [(accepted_at,)] = sql(app, "select terms_accepted_at from checkout_sessions")
    assert accepted_at is not None
