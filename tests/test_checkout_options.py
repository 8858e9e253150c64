"""`[checkout]` in catalog.toml: options per environment, overridden by CHECKOUT_* variables,
and what a Checkout Session is created with."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from tests.conftest import make_app
from webapp.catalog import CatalogError, get_checkout_options
from webapp.checkout_options import (
    CheckoutOptions,
    CheckoutOptionsError,
    parse_checkout_settings,
    resolve,
)

PER_ENV = {"allow_promotion_codes": {"development": True, "test": False, "production": False}}


def test_one_value_or_one_per_environment() -> None:
    assert parse_checkout_settings({"allow_promotion_codes": True})["production"] == (
        CheckoutOptions(allow_promotion_codes=True)
    )
    settings = parse_checkout_settings(PER_ENV)
    assert settings["development"].allow_promotion_codes is True
    assert settings["production"].allow_promotion_codes is False
    assert parse_checkout_settings(None)["production"] == CheckoutOptions()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"allow_promotion_code": True}, "unknown option 'allow_promotion_code'"),
        ({"allow_promotion_codes": "yes"}, "must be true or false"),
        ({"allow_promotion_codes": {"development": True, "test": True}}, "missing a value"),
        (
            {"allow_promotion_codes": {**PER_ENV["allow_promotion_codes"], "staging": True}},
            "unknown environment 'staging'",
        ),
        ([], "must be a table"),
    ],
)
def test_bad_tables_are_refused(raw: Any, message: str) -> None:
    with pytest.raises(CheckoutOptionsError, match=message):
        parse_checkout_settings(raw)


def test_environment_variables_override_the_file() -> None:
    settings = parse_checkout_settings(PER_ENV)
    on = {"CHECKOUT_ALLOW_PROMOTION_CODES": "true"}
    assert resolve(settings, "production", on).allow_promotion_codes is True
    off = {"CHECKOUT_ALLOW_PROMOTION_CODES": "off"}
    assert resolve(settings, "development", off).allow_promotion_codes is False
    assert resolve(
        settings, "development", {"CHECKOUT_ALLOW_PROMOTION_CODES": ""}
    ).allow_promotion_codes
    with pytest.raises(CheckoutOptionsError, match="must be true or false"):
        resolve(settings, "production", {"CHECKOUT_ALLOW_PROMOTION_CODES": "maybe"})


def test_session_params_send_only_what_is_on() -> None:
    assert CheckoutOptions().session_params() == {}
    assert CheckoutOptions(allow_promotion_codes=True).session_params() == {
        "allow_promotion_codes": True
    }


def test_the_shipped_catalog_and_an_override_at_start_up(app: Flask, database_url: str) -> None:
    with app.app_context():
        assert get_checkout_options().allow_promotion_codes is True  # test: on
    off = make_app(database_url, CHECKOUT_OVERRIDES={"CHECKOUT_ALLOW_PROMOTION_CODES": "false"})
    with off.app_context():
        assert get_checkout_options().allow_promotion_codes is False
    with pytest.raises(CatalogError, match="CHECKOUT_ALLOW_PROMOTION_CODES"):
        make_app(database_url, CHECKOUT_OVERRIDES={"CHECKOUT_ALLOW_PROMOTION_CODES": "sure"})


def test_checkout_sessions_carry_the_options(app: Flask, auth, client, user_id) -> None:
    """Through the site: the session Stripe holds has the option the catalog turned on."""
    from tests.billing_helpers import start_checkout
    from webapp.stripe_gateway import get_gateway

    auth.login()
    started = start_checkout(client)
    session_id = started.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    with app.app_context():
        assert get_gateway().retrieve_checkout_session(session_id).allow_promotion_codes is True


def test_trial_params_follow_the_options() -> None:
    assert CheckoutOptions().trial_params(14) == {}
    assert CheckoutOptions(free_trials=True).trial_params(0) == {}
    assert CheckoutOptions(free_trials=True).trial_params(14) == {
        "subscription_data": {"trial_period_days": 14}
    }
    assert CheckoutOptions(free_trials=True, trials_without_card=True).trial_params(14) == {
        "payment_method_collection": "if_required",
        "subscription_data": {
            "trial_period_days": 14,
            "trial_settings": {"end_behavior": {"missing_payment_method": "cancel"}},
        },
    }
    # Card-less alone offers no trial: there is none to take the card away from.
    assert CheckoutOptions(trials_without_card=True).trial_params(14) == {}


def test_trials_are_off_in_test_and_production_as_shipped() -> None:
    from webapp.catalog import load_catalog

    settings = load_catalog().checkout
    assert settings["development"].free_trials and settings["development"].trials_without_card
    assert not settings["test"].free_trials and not settings["production"].free_trials
    on = resolve(settings, "production", {"CHECKOUT_FREE_TRIALS": "yes"})
    assert on.free_trials and not on.trials_without_card
