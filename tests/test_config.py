"""Configuration from the environment; production refuses unsafe settings."""

import pytest

from tests.conftest import SAFE_PRODUCTION
from webapp import create_app
from webapp.config import Config, ConfigError


def test_defaults_are_sandbox_and_sqlite_under_instance():
    config = Config({})
    assert config.sandbox_mode
    assert config.SQLALCHEMY_DATABASE_URI.endswith("instance/app.db")
    assert config.STRIPE_WEBHOOK_SECRET  # the sandbox signs with its own secret


def test_postgres_urls_get_the_psycopg_driver():
    config = Config({"DATABASE_URL": "postgres://u@h/db"})
    assert config.SQLALCHEMY_DATABASE_URI == "postgresql+psycopg://u@h/db"


def test_safe_production_config_validates():
    Config(SAFE_PRODUCTION).validate()
    # The usage endpoints' credential is optional: unset, they refuse every request.
    Config({**SAFE_PRODUCTION, "CREDITS_SERVICE_TOKEN": "t" * 40 + "," + "u" * 40}).validate()


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY"),
        ({"JWT_SECRET": ""}, "JWT_SECRET"),
        ({"STRIPE_SECRET_KEY": ""}, "sandbox"),
        ({"STRIPE_WEBHOOK_SECRET": ""}, "STRIPE_WEBHOOK_SECRET"),
        ({"REDIS_URL": ""}, "REDIS_URL must be set: without shared storage"),
        ({"RATELIMIT_ENABLED": "false"}, "RATELIMIT_ENABLED must stay on"),
        ({"CREDITS_SERVICE_TOKEN": "short"}, "CREDITS_SERVICE_TOKEN"),
        ({"CREDITS_SERVICE_TOKEN": "j" * 40}, "CREDITS_SERVICE_TOKEN"),  # JWT_SECRET's value
        ({"CREDITS_SERVICE_TOKEN": "t" * 40 + ",short"}, "CREDITS_SERVICE_TOKEN"),
    ],
)
def test_production_refuses_unsafe_settings(change, complaint):
    with pytest.raises(ConfigError, match=complaint):
        create_app(Config({**SAFE_PRODUCTION, **change}))


def test_secure_cookies_when_configured():
    config = Config({"SESSION_COOKIE_SECURE": "true"})
    assert config.SESSION_COOKIE_SECURE and config.REMEMBER_COOKIE_SECURE


@pytest.mark.parametrize(
    ("setting", "value"),
    [("TRUSTED_PROXY_COUNT", "-1"), ("LOGIN_ACCOUNT_RATE_LIMIT", "ten a minute")],
)
def test_limit_settings_that_make_no_sense_refuse_to_start(setting, value):
    with pytest.raises(ConfigError, match=setting):
        Config({setting: value}).validate()


def test_mail_url_gives_host_port_login_and_starttls():
    config = Config({"MAIL_URL": "smtp://mailer:p%40ss@smtp.example:2587?starttls=true"})
    assert config.mail_is_smtp
    assert (config.MAIL_HOST, config.MAIL_PORT) == ("smtp.example", 2587)
    assert (config.MAIL_USERNAME, config.MAIL_PASSWORD) == ("mailer", "p@ss")
    assert (config.MAIL_USE_TLS, config.MAIL_USE_SSL) == (True, False)


def test_smtps_url_means_implicit_tls_on_port_465():
    config = Config({"MAIL_URL": "smtps://smtp.example"})
    assert (config.MAIL_PORT, config.MAIL_USE_SSL, config.MAIL_USE_TLS) == (465, True, False)


def test_mail_host_settings_work_without_a_url():
    config = Config({"MAIL_HOST": "smtp.example", "MAIL_USE_TLS": "true", "MAIL_USERNAME": "u"})
    assert (config.MAIL_HOST, config.MAIL_PORT, config.MAIL_USERNAME) == ("smtp.example", 587, "u")


def test_no_mail_settings_keep_mail_and_deliver_it_after_commit_in_development():
    config = Config({})
    assert not config.mail_is_smtp
    assert config.MAIL_DELIVER_AFTER_COMMIT
    assert config.MAIL_FROM == "LLMGen <no-reply@127.0.0.1>"
    assert not Config(SAFE_PRODUCTION).MAIL_DELIVER_AFTER_COMMIT  # the worker sends


def test_mail_url_of_another_scheme_is_refused():
    with pytest.raises(ConfigError, match="MAIL_URL"):
        Config({"MAIL_URL": "http://smtp.example"}).validate()


def test_production_refuses_to_start_without_smtp():
    unsafe = {key: value for key, value in SAFE_PRODUCTION.items() if key != "MAIL_URL"}
    with pytest.raises(ConfigError, match="MAIL_URL"):
        Config(unsafe).validate()
