"""`flask stripe-sandbox …` and the control endpoints, and their absence outside sandbox mode."""

from __future__ import annotations

import json

from flask import Flask

from tests.conftest import make_app
from tests.sandbox.helpers import sandbox_of
from webapp.extensions import db


def cli(app: Flask, *args: str):
    return app.test_cli_runner().invoke(args=["stripe-sandbox", *args])


def test_fault_command_arms_and_clears_switches(app: Flask):
    result = cli(app, "fault", "--api", "2", "--api-mode", "timeout", "--delay", "3")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["api"] == {"remaining": 2, "mode": "timeout", "delay": 3.0}
    result = cli(app, "fault", "--webhooks", "reverse", "--count", "3")
    assert json.loads(result.output)["webhooks"]["mode"] == "reverse"
    cleared = json.loads(cli(app, "fault", "--clear").output)
    assert cleared == {"api": None, "webhooks": None}


def test_events_and_deliver_commands(app: Flask, gateway):
    assert "no deliveries yet" in cli(app, "events").output
    sandbox_of(app).faults.set_webhooks("late", count=100, delay=600)
    app.config["SANDBOX_WEBHOOK_URLS"] = ["http://127.0.0.1:9/unreachable"]
    gateway.create_customer(email="c@example.com", user_id=1, idempotency_key="c")
    listed = cli(app, "events").output
    assert "pending" in listed and "customer.created" in listed
    result = cli(app, "deliver", "--include-late")
    assert result.exit_code == 0 and "delivered 0" in result.output
    failed = sandbox_of(app).webhooks.delivery_log(1)[0]
    assert failed.attempts == 1 and "Connection refused" in (failed.last_error or "")


def test_control_endpoints_refuse_bad_input(app: Flask):
    client = app.test_client()
    assert client.post("/sandbox/control/advance", json={"days": 0}).status_code == 400
    bad = client.post("/sandbox/control/faults", json={"api": {"mode": "explode"}})
    assert bad.status_code == 400


def test_nothing_of_the_sandbox_exists_with_a_real_key(database_url: str, _schema):
    app = make_app(database_url, STRIPE_SECRET_KEY="sk_test_real", STRIPE_WEBHOOK_SECRET="whsec_x")
    try:
        client = app.test_client()
        assert client.post("/sandbox/control/advance", json={"days": 1}).status_code == 404
        assert client.get("/sandbox/checkout/cs_test_x").status_code == 404
        result = cli(app, "advance", "--days", "1")
        assert result.exit_code != 0 and "not in sandbox mode" in result.output
    finally:
        with app.app_context():
            db.engine.dispose()
