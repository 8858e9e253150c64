"""Consent to the terms of service on the sandbox's hosted Checkout, through the real SDK: a
session with `consent_collection.terms_of_service = "required"` shows the checkbox in the
session's own words, refuses to be paid until it is ticked (nothing written), and once paid
carries `consent.terms_of_service = "accepted"`, as Stripe's Session does (SDK
checkout/_session.py `Consent`; shared/stripe/fixtures3.json checkout.session)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask

from tests.sandbox.helpers import (
    answer_challenge,
    client_of,
    events_of,
    new_checkout,
    pay,
    raw,
)
from webapp.checkout_options import CheckoutOptions
from webapp.stripe_gateway import InvalidRequest, StripeGateway

TERMS_URL = "http://localhost/terms"
CONSENT = CheckoutOptions(consent_collection=True).session_params(terms_url=TERMS_URL)
NEEDS_3DS = "4000 0027 6000 3184"


def consent_checkout(gateway: StripeGateway, **kwargs: Any) -> Any:
    return new_checkout(gateway, option_params=CONSENT, **kwargs)


def page_of(app: Flask, session: Any) -> str:
    return client_of(app).get(urlsplit(session.url).path).get_data(as_text=True)


def test_the_session_carries_what_was_asked(gateway: StripeGateway) -> None:
    session = consent_checkout(gateway)
    assert session.consent_collection.terms_of_service == "required"
    message = session.custom_text.terms_of_service_acceptance.message
    assert message == f"I agree to the LLMGen [Terms of Service]({TERMS_URL})."
    assert session.consent is None  # nothing accepted yet
    body = raw(session)
    assert set(body["consent_collection"]) == {
        "payment_method_reuse_agreement",
        "promotions",
        "terms_of_service",
    }
    plain = new_checkout(gateway, key="plain", email="plain@example.com")
    assert plain.consent_collection is None
    assert plain.custom_text.terms_of_service_acceptance is None


@pytest.mark.parametrize(
    ("option_params", "message"),
    [
        ({"consent_collection": {"terms_of_service": "yes"}}, "must be one of none, required"),
        ({"consent_collection": {"promotions": "auto"}}, "unknown parameter"),
        (
            {"custom_text": {"terms_of_service_acceptance": {"message": "x" * 1201}}},
            "at most 1200 characters",
        ),
        ({"custom_text": {"terms_of_service_acceptance": {"message": ""}}}, "Missing required"),
    ],
)
def test_bad_consent_params_are_refused(
    gateway: StripeGateway, option_params: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        new_checkout(gateway, option_params=option_params)


def test_the_page_shows_the_checkbox_with_the_sessions_words(
    app: Flask, gateway: StripeGateway
) -> None:
    html = page_of(app, consent_checkout(gateway))
    assert 'type="checkbox"' in html and 'name="accept_terms"' in html
    assert f'I agree to the LLMGen <a href="{TERMS_URL}"' in html
    plain = new_checkout(gateway, key="plain", email="plain@example.com")
    assert 'name="accept_terms"' not in page_of(app, plain)


def test_default_words_link_the_accounts_terms_page(app: Flask, gateway: StripeGateway) -> None:
    session = new_checkout(
        gateway, option_params={"consent_collection": CONSENT["consent_collection"]}
    )
    html = page_of(app, session)
    base = app.config["PUBLIC_BASE_URL"].rstrip("/")
    assert f'I agree to the <a href="{base}/terms"' in html


def test_paying_without_ticking_the_box_is_refused(app: Flask, gateway: StripeGateway) -> None:
    session = consent_checkout(gateway)
    refused = pay(client_of(app), session.url)
    assert refused.status_code == 400
    assert "Please agree to the Terms of Service to continue." in refused.get_data(as_text=True)
    again = gateway.retrieve_checkout_session(session.id)
    assert (again.status, again.consent) == ("open", None)
    assert gateway.list_subscriptions(session.customer) == []
    assert events_of(gateway, "checkout.session.completed") == []

    paid = pay(client_of(app), session.url, accept_terms="y")
    assert paid.status_code == 303, paid.get_data(as_text=True)[:2000]
    done = gateway.retrieve_checkout_session(session.id)
    assert done.status == "complete"
    assert done.consent.terms_of_service == "accepted"
    assert raw(done)["consent"] == {"promotions": None, "terms_of_service": "accepted"}
    (completed,) = events_of(gateway, "checkout.session.completed")
    assert completed.data.object.consent.terms_of_service == "accepted"


def test_a_session_without_consent_pays_as_before(app: Flask, gateway: StripeGateway) -> None:
    session = new_checkout(gateway)
    assert pay(client_of(app), session.url).status_code == 303
    assert gateway.retrieve_checkout_session(session.id).consent is None


def test_3d_secure_needs_the_box_first_and_keeps_it(app: Flask, gateway: StripeGateway) -> None:
    session = consent_checkout(gateway)
    client = client_of(app)
    refused = pay(client, session.url, NEEDS_3DS)
    assert refused.status_code == 400  # asked before the bank's challenge, not after
    started = pay(client, session.url, NEEDS_3DS, accept_terms="y")
    assert started.status_code == 303
    done = answer_challenge(client, started.headers["Location"], "complete")
    assert done.headers["Location"] == session.success_url
    paid = gateway.retrieve_checkout_session(session.id)
    assert paid.status == "complete" and paid.consent.terms_of_service == "accepted"
