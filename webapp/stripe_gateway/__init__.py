"""The one package that talks to Stripe (see DESIGN.md, "Two Stripe modes, one code path").

Intent-level methods over one `stripe.StripeClient` built in `init_app`; every Stripe failure comes
out as one of the exceptions below. With no `STRIPE_SECRET_KEY` the client's transport is the local
sandbox (`webapp.sandbox`), called in-process through its WSGI app; with a key it is HTTPS to
Stripe, or to `STRIPE_API_BASE` when set. Either way each attempt ends within
`STRIPE_TIMEOUT_SECONDS`, and all of a web request's calls within its Stripe budget
(`webapp.stripe_budget`), so a hung Stripe is our error page, never a killed worker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import stripe
from flask import Flask, current_app

from webapp import stripe_budget
from webapp.stripe_gateway.errors import (
    AuthenticationFailed,
    CardDeclined,
    InvalidRequest,
    PaymentProviderError,
    ProviderUnavailable,
    ResourceMissing,
    SignatureVerificationFailed,
    plain_metadata,
)
from webapp.stripe_gateway.gateway import StripeGateway
from webapp.stripe_gateway.transport import BoundedRequestsClient, SandboxHTTPClient

if TYPE_CHECKING:
    import click

    from webapp.sandbox import Sandbox

__all__ = [
    "SANDBOX_API_BASE",
    "SANDBOX_API_KEY",
    "AuthenticationFailed",
    "BoundedRequestsClient",
    "CardDeclined",
    "InvalidRequest",
    "PaymentProviderError",
    "ProviderUnavailable",
    "ResourceMissing",
    "SandboxHTTPClient",
    "SignatureVerificationFailed",
    "StripeGateway",
    "get_gateway",
    "init_app",
    "plain_metadata",
    "sandbox_cli",
]

SANDBOX_API_KEY = "sk_test_sandbox"
# Where the in-process transport says it sends requests; never resolved, never connected to.
SANDBOX_API_BASE = "http://stripe-sandbox.invalid"


def _build_client(app: Flask) -> tuple[stripe.StripeClient, Sandbox | None]:
    config = app.config
    timeout = float(config["STRIPE_TIMEOUT_SECONDS"])
    retries = int(config["STRIPE_MAX_NETWORK_RETRIES"])
    if config["STRIPE_SECRET_KEY"]:
        base = config.get("STRIPE_API_BASE") or None
        client = stripe.StripeClient(
            config["STRIPE_SECRET_KEY"],
            http_client=BoundedRequestsClient(timeout),
            max_network_retries=retries,
            base_addresses={"api": base.rstrip("/")} if base else None,
        )
        return client, None
    from webapp import sandbox as sandbox_package

    sandbox = sandbox_package.init_app(app, api_version=stripe.api_version)
    if not sandbox.public_url:
        sandbox.public_url = config.get("SANDBOX_PUBLIC_URL") or None
    client = stripe.StripeClient(
        SANDBOX_API_KEY,
        http_client=SandboxHTTPClient(sandbox.api, timeout),
        max_network_retries=retries,
        base_addresses={"api": SANDBOX_API_BASE},
    )
    return client, sandbox


def init_app(app: Flask, *, seed_sandbox: Callable[[StripeGateway], object] | None = None) -> None:
    """Build the one Stripe client for this app and store the gateway in `app.extensions`.

    In sandbox mode, `seed_sandbox` runs once, before the first price is looked up, so that the
    empty sandbox sells the catalog (it needs the database, which the factory may not have yet).
    """
    # The SDK offers no per-client switch for its telemetry (request timings sent back to
    # Stripe in a header); the module flag is the only one, so it is turned off here, at start-up.
    stripe.enable_telemetry = False
    client, sandbox = _build_client(app)
    app.extensions["stripe_gateway"] = StripeGateway(
        client, sandbox=sandbox, seed_sandbox=seed_sandbox
    )
    stripe_budget.init_app(app)


def get_gateway() -> StripeGateway:
    gateway: StripeGateway = current_app.extensions["stripe_gateway"]
    return gateway


def sandbox_cli() -> click.Group:
    """The `stripe-sandbox` command group (it refuses to run outside sandbox mode)."""
    from webapp.sandbox.cli import sandbox_cli as group

    return group
