"""A local, stateful, wire-compatible Stripe (see DESIGN.md, "Two Stripe modes, one code path").

Only `webapp.stripe_gateway` imports this package: it builds the `Sandbox` when no Stripe key is
configured and points the SDK at `Sandbox.api`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from webapp.config import ConfigError
from webapp.extensions import db
from webapp.sandbox import models  # noqa: F401  (registers the sandbox tables)
from webapp.sandbox.faults import Faults
from webapp.sandbox.store import DEFAULT_UPCOMING_DAYS, UPCOMING_DAYS_CHOICES, Store
from webapp.sandbox.webhooks import Webhooks
from webapp.sandbox.wire import StripeAPIError


class Sandbox:
    """The sandbox bound to one app: its database, its API, its webhooks and switches."""

    def __init__(self, app: Flask, api_version: str) -> None:
        from webapp.sandbox.api import SandboxAPI

        self.app = app
        self.api_version = api_version
        with app.app_context():
            self.engine: Engine = db.engine
        # Where hosted pages are when no site request tells us (CLI, standalone server).
        self.public_url: str | None = app.config.get("SANDBOX_PUBLIC_URL") or None
        self.upcoming_days = upcoming_days(app)
        # SANDBOX_LATENCY_MS: each API call answers this much later, as Stripe over the
        # internet does (benchmarks: how the site holds up when every call costs 200 ms).
        self.latency_seconds = max(0, int(app.config.get("SANDBOX_LATENCY_MS") or 0)) / 1000
        self.webhooks = Webhooks(self, app)
        # When the app lets go of its database (tests tearing an app down), its background
        # worker stops too, instead of polling tables that may be gone.
        event.listen(self.engine, "engine_disposed", lambda _engine: self.webhooks.close())
        self.faults = Faults(self)
        self.api = SandboxAPI(self)

    @contextmanager
    def store(self) -> Iterator[Store]:
        """A unit of work in its own session and transaction (never the site's session), whose
        events are queued for delivery in the same transaction and sent after the commit."""
        error: StripeAPIError | None = None
        with Session(self.engine, expire_on_commit=False) as session:
            store = Store(session, self.api_version)
            store.public_base = self.public_base()
            store.upcoming_days = self.upcoming_days
            try:
                yield store
            except StripeAPIError as exc:
                # Some Stripe errors leave their changes behind (a declined invoice payment
                # keeps its failed charge and events): commit those, then answer the error.
                if not exc.keep_changes:
                    raise
                error = exc
            if store.events:
                self.webhooks.queue(session, store.events, self.faults.webhook_plan(store))
            session.commit()
        if store.events:
            self.webhooks.after_commit()
        if error is not None:
            raise error

    def public_base(self) -> str:
        """The origin (with a trailing slash) of the hosted pages: SANDBOX_PUBLIC_URL, else
        this site's public origin, as the API answers in-process calls (`SandboxAPI`)."""
        if self.public_url:
            return self.public_url
        return self.app.config["PUBLIC_BASE_URL"].rstrip("/") + "/"


def upcoming_days(app: Flask) -> int:
    """SANDBOX_UPCOMING_INVOICE_DAYS, one of the values Stripe's Dashboard offers."""
    value = app.config.get("SANDBOX_UPCOMING_INVOICE_DAYS", DEFAULT_UPCOMING_DAYS)
    if value not in UPCOMING_DAYS_CHOICES:
        raise ConfigError(
            "SANDBOX_UPCOMING_INVOICE_DAYS must be one of "
            f"{', '.join(map(str, UPCOMING_DAYS_CHOICES))} (Stripe's choices); got {value!r}"
        )
    return value


def init_app(app: Flask, api_version: str) -> Sandbox:
    """Build the sandbox for `app` and mount its hosted pages and control endpoints."""
    from webapp.sandbox import pages

    sandbox = Sandbox(app, api_version)
    app.extensions["stripe_sandbox"] = sandbox
    app.register_blueprint(pages.bp)
    app.teardown_request(sandbox.webhooks.deliver_after_request)
    if app.config.get("SANDBOX_WEBHOOK_DELIVERY") != "sync":
        # Each process runs a delivery worker from its first request on, so deliveries left
        # behind by a process that died are still sent.
        def start_delivery_worker() -> None:
            sandbox.webhooks.ensure_worker()

        app.before_request(start_delivery_worker)
    return sandbox


def get_sandbox(app: Flask) -> Sandbox:
    return app.extensions["stripe_sandbox"]
