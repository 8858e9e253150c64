"""`flask --app wsgi stripe-sandbox …`: serve, inspect and steer the sandbox."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from werkzeug.serving import run_simple

from webapp.sandbox import Sandbox, operations

sandbox_cli = AppGroup("stripe-sandbox", help="The local Stripe sandbox (sandbox mode only).")


def _sandbox() -> Sandbox:
    sandbox = current_app.extensions.get("stripe_sandbox")
    if sandbox is None:
        raise click.ClickException(
            "not in sandbox mode: STRIPE_SECRET_KEY is set, so this app talks to Stripe"
        )
    return sandbox


class APIAndSite:
    """`/v1/…` to the sandbox API, everything else (hosted pages, webhooks) to the site."""

    def __init__(self, app: Flask, sandbox: Sandbox) -> None:
        self.app, self.sandbox = app, sandbox

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO", "").startswith("/v1/"):
            return self.sandbox.api(environ, start_response)
        return self.app(environ, start_response)


@sandbox_cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=12111, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Serve the sandbox's API (and its hosted pages) for other processes.

    Point another app at it with STRIPE_SECRET_KEY=sk_test_… and
    STRIPE_API_BASE=http://HOST:PORT.
    """
    sandbox = _sandbox()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    sandbox.public_url = f"http://{host}:{port}/"
    sandbox.webhooks.ensure_worker()
    click.echo(f"Stripe sandbox API on http://{host}:{port}/v1 (key: any sk_test_…)")
    run_simple(host, port, APIAndSite(app, sandbox), threaded=True, use_reloader=False)


@sandbox_cli.command("events")
@click.option("--limit", default=30, show_default=True)
def events(limit: int) -> None:
    """The webhook delivery log, newest first."""
    rows = _sandbox().webhooks.delivery_log(limit)
    if not rows:
        click.echo("no deliveries yet")
    for row in rows:
        when = datetime.fromtimestamp(row.created_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        click.echo(
            f"{when}  {row.status:<9} {row.last_status or '-':>3}  attempts={row.attempts}  "
            f"{row.event_type:<36} {row.event_id}  → {row.url}"
        )


@sandbox_cli.command("deliver")
@click.option("--include-late", is_flag=True, help="Also send deliveries held back as late.")
def deliver(include_late: bool) -> None:
    """Send pending webhook deliveries now."""
    sent = _sandbox().webhooks.deliver_due(include_late=include_late)
    click.echo(f"delivered {sent}")


@sandbox_cli.command("advance")
@click.option("--days", type=float, default=0.0)
@click.option("--seconds", type=int, default=0)
def advance(days: float, seconds: int) -> None:
    """Move the test clock on: renewals, failed renewals, period-end cancellations."""
    total = int(days * 86400) + seconds
    if total <= 0:
        raise click.BadParameter("give a positive --days or --seconds")
    sandbox = _sandbox()
    with sandbox.store() as store:
        now = operations.advance_clock(store, total)
        caused = [event["type"] for event in store.events]
    click.echo(f"sandbox time is now {datetime.fromtimestamp(now, UTC):%Y-%m-%d %H:%M:%S} UTC")
    for event_type in caused:
        click.echo(f"  {event_type}")
    sandbox.webhooks.deliver_due()


@sandbox_cli.command("fault")
@click.option("--api", "api_count", type=int, default=0, help="Fail the next N API calls.")
@click.option("--api-mode", type=click.Choice(["500", "timeout"]), default="500")
@click.option(
    "--delay", type=float, default=30.0, help="Seconds a timeout hangs / late webhooks wait."
)
@click.option("--webhooks", "webhook_mode", type=click.Choice(["duplicate", "reverse", "late"]))
@click.option(
    "--count", type=int, default=1, help="How many state changes the webhook fault affects."
)
@click.option("--clear", is_flag=True, help="Disarm every fault switch.")
def fault(api_count, api_mode, delay, webhook_mode, count, clear) -> None:
    """Arm fault switches (API errors or timeouts; duplicated, reversed or late webhooks)."""
    faults = _sandbox().faults
    if clear:
        faults.clear()
    if api_count:
        faults.set_api(api_count, api_mode, delay)
    if webhook_mode:
        faults.set_webhooks(webhook_mode, count, delay)
    click.echo(json.dumps(faults.status()))
