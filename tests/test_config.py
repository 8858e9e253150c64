"""Configuration from the environment; production refuses unsafe settings."""

import pytest

from webapp import create_app
from webapp.config import Config, ConfigError

SAFE_PRODUCTION = {
    "APP_ENV": "production",
    "SECRET_KEY": "s" * 40,
    "JWT_SECRET": "j" * 40,
    "STRIPE_SECRET_KEY": "sk_live_example",
    "STRIPE_WEBHOOK_SECRET": "whsec_example",
    "SESSION_COOKIE_SECURE": "true",
    "PUBLIC_BASE_URL": "https://llmgen.example",
    "ALLOWED_REDIRECT_HOSTS": "llmgen.example",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}


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


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY"),
        ({"JWT_SECRET": ""}, "JWT_SECRET"),
        ({"STRIPE_SECRET_KEY": ""}, "sandbox"),
        ({"STRIPE_WEBHOOK_SECRET": ""}, "STRIPE_WEBHOOK_SECRET"),
        ({"REDIS_URL": ""}, "REDIS_URL must be set: without shared storage"),
        ({"RATELIMIT_ENABLED": "false"}, "RATELIMIT_ENABLED must stay on"),
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
