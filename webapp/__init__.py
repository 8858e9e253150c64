"""The application factory. Reads like a table of contents: see `create_app`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from webapp.config import PROJECT_ROOT, Config


def create_app(config: Config | Mapping[str, Any] | None = None) -> Flask:
    """Build the app from `config` (a Config, a mapping of overrides, or the environment)."""
    app = Flask(
        __name__,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
        instance_path=str(PROJECT_ROOT / "instance"),
    )
    config = load_config(app, config)
    trust_proxies(app)
    configure_logging(app, config.warnings())
    register_extensions(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_request_hooks(app)
    register_template_helpers(app)
    register_commands(app)
    return app


def load_config(app: Flask, config: Config | Mapping[str, Any] | None) -> Config:
    if config is None:
        config = Config()
    elif not isinstance(config, Config):
        overrides, config = dict(config), Config()
        for key, value in overrides.items():
            setattr(config, key, value)
    config.validate()
    app.config.from_mapping(config.as_dict())
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        PROJECT_ROOT.joinpath("instance").mkdir(exist_ok=True)
    return config


def trust_proxies(app: Flask) -> None:
    """Take the client's address and scheme from `TRUSTED_PROXY_COUNT` reverse proxies.

    Only X-Forwarded-For and -Proto: the host of absolute URLs comes from configuration,
    never from a header a client can send.
    """
    count = app.config["TRUSTED_PROXY_COUNT"]
    if count > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=count, x_proto=count, x_host=0, x_port=0, x_prefix=0
        )


def configure_logging(app: Flask, warnings: list[str]) -> None:
    from webapp import logs

    logs.init_app(app)
    for warning in warnings:
        app.logger.warning("%s", warning)


def register_extensions(app: Flask) -> None:
    from webapp import (
        catalog,
        database,
        emails,
        jobs,
        mail,
        member_cache,
        stripe_catalog,
        stripe_gateway,
        throttle,
    )
    from webapp.extensions import compress, csrf, limiter, login_manager, migrate

    catalog.init_app(app)
    database.init_app(app)
    member_cache.init_app(app)
    migrate.init_app(app, database.db, directory=str(PROJECT_ROOT / "migrations"))
    csrf.init_app(app)
    limiter.init_app(app)
    throttle.init_app(app)
    login_manager.init_app(app)
    stripe_gateway.init_app(app, seed_sandbox=stripe_catalog.seed_sandbox)
    mail.init_app(app)  # the outbox's delivery hook, its command and the dev mailbox
    emails.init_app(app)  # billing mail: its pages, and the credits-low check on ledger writes
    compress.init_app(app)
    jobs.init_app(app)  # the job engine: Celery on JOBS_BROKER_URL, in-process without one


def register_blueprints(app: Flask) -> None:
    from webapp.account.company import bp as company_bp
    from webapp.account.views import bp as account_bp
    from webapp.admin.views import bp as admin_bp
    from webapp.api.keys_views import bp as api_keys_bp
    from webapp.api.views import bp as api_bp
    from webapp.auth.account_security import bp as account_security_bp
    from webapp.auth.recovery import bp as recovery_bp
    from webapp.auth.views import bp as auth_bp
    from webapp.checkout.views import bp as checkout_bp
    from webapp.health.views import bp as health_bp
    from webapp.legal.views import bp as legal_bp
    from webapp.pricing.views import bp as pricing_bp
    from webapp.webhooks.views import bp as webhooks_bp

    for blueprint in (
        pricing_bp,
        auth_bp,
        recovery_bp,
        account_bp,
        account_security_bp,
        company_bp,
        checkout_bp,
        webhooks_bp,
        admin_bp,
        api_bp,
        api_keys_bp,
        health_bp,
        legal_bp,
    ):
        app.register_blueprint(blueprint)


def register_error_handlers(app: Flask) -> None:
    from webapp import errors

    errors.init_app(app)


def register_request_hooks(app: Flask) -> None:
    from webapp import public_pages, security

    security.init_app(app)
    public_pages.init_app(app)  # public pages: no session cookie, no Vary: Cookie


def register_template_helpers(app: Flask) -> None:
    from webapp import templating

    templating.init_app(app)


def register_commands(app: Flask) -> None:
    from webapp import commands

    commands.init_app(app)
