"""SANDBOX_LATENCY_MS: the sandbox answers every API call that much later, as Stripe over the
internet would; the site's own pages are not slowed."""

from __future__ import annotations

import time

import pytest

from webapp.stripe_gateway import get_gateway


def _timed_calls(app, count: int = 3) -> float:
    with app.app_context():
        gateway = get_gateway()
        started = time.monotonic()
        for _ in range(count):
            gateway.client.v1.products.list()
        return (time.monotonic() - started) / count


@pytest.mark.parametrize("config_overrides", [{"SANDBOX_LATENCY_MS": 250}])
def test_each_stripe_call_takes_the_configured_latency(app, client):
    assert _timed_calls(app) >= 0.25
    started = time.monotonic()
    assert client.get("/healthz").status_code == 200
    assert time.monotonic() - started < 0.25  # only Stripe calls wait


def test_no_latency_by_default(app):
    assert app.config["SANDBOX_LATENCY_MS"] == 0
    assert app.extensions["stripe_sandbox"].latency_seconds == 0
