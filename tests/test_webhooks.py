"""The webhook endpoint: signatures, the event ledger, idempotency, order and failures."""

import json

import pytest

from tests.billing_helpers import (
    pay,
    post_event,
    sandbox_events,
    signature,
    start_checkout,
    subscribe,
)
from tests.conftest import sql
from webapp import billing


@pytest.fixture
def config_overrides():
    # The sandbox records events but leaves delivery to each test, which posts them itself.
    return {"SANDBOX_DELIVER_TO_SELF": False}


@pytest.fixture
def paid(app, client, auth, user_id):
    """A user who paid for Professional monthly; no event delivered yet."""
    auth.login()
    checkout = start_checkout(client)
    pay(client, checkout.headers["Location"])
    return user_id


def state(app):
    """Everything the events decide, for comparing runs."""
    return {
        "subscriptions": sql(
            app,
            "select plan_id, cycle, status, cancel_at_period_end, current_period_end "
            "from subscriptions order by stripe_subscription_id",
        ),
        "credits": sql(app, "select amount, grant_key from credit_entries order by grant_key"),
        "sessions": sql(app, "select status from checkout_sessions"),
    }


def forget_effects(app):
    sql_statements = [
        "delete from webhook_events",
        "delete from credit_entries",
        "delete from subscriptions",
    ]
    with app.app_context():
        from webapp.extensions import db

        for statement in sql_statements:
            db.session.execute(db.text(statement))
        db.session.execute(db.text("update checkout_sessions set status = 'open'"))
        db.session.commit()


def test_payment_events_fulfil_the_subscription(app, client, paid):
    assert sql(app, "select count(*) from subscriptions") == [(0,)]
    for event in sandbox_events(app):
        assert post_event(client, event).status_code == 200
    assert state(app)["subscriptions"][0][:3] == ("professional", "monthly", "active")
    assert sql(app, "select sum(amount) from credit_entries") == [(3000,)]
    assert sql(app, "select status from webhook_events where type = 'invoice.paid'") == [
        ("processed",)
    ]


def test_same_event_twice_has_one_effect(app, client, paid):
    [invoice_paid] = sandbox_events(app, ("invoice.paid",))
    first, second = post_event(client, invoice_paid), post_event(client, invoice_paid)
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.get_json()["message"] == "duplicate"
    assert sql(app, "select count(*), sum(amount) from credit_entries") == [(1, 3000)]
    assert sql(app, "select count(*), max(attempts) from webhook_events") == [(1, 1)]


def test_invoice_paid_replayed_ten_times_grants_once(app, client, paid):
    [invoice_paid] = sandbox_events(app, ("invoice.paid",))
    for _ in range(10):
        assert post_event(client, invoice_paid).status_code == 200
    assert sql(app, "select count(*), sum(amount) from credit_entries") == [(1, 3000)]


def test_reverse_order_gives_the_same_state_as_in_order(app, client, paid):
    # More history: an upgrade and a cancellation at period end, through the portal's API calls.
    with app.app_context():
        from webapp.stripe_gateway import get_gateway

        sub_id = (
            get_gateway()
            .list_subscriptions(sql(app, "select stripe_customer_id from users")[0][0])[0]
            .id
        )
        item = get_gateway().retrieve_subscription(sub_id)["items"]["data"][0]
        business = get_gateway().price_for("business_monthly")
        get_gateway().update_subscription(
            sub_id,
            items=[{"id": item.id, "price": business.id}],
            proration_behavior="create_prorations",
        )
        get_gateway().update_subscription(sub_id, cancel_at_period_end=True)
    events = sandbox_events(app)
    for event in reversed(events):
        assert post_event(client, event).status_code == 200
    reversed_state = state(app)
    forget_effects(app)
    for event in events:
        assert post_event(client, event).status_code == 200
    assert state(app) == reversed_state
    [(plan, _cycle, status, cancel_at_end, _end)] = reversed_state["subscriptions"]
    assert (plan, status, cancel_at_end) == ("business", "active", True)
    # 3,000 for the first month. The upgrade's prorations wait for the next invoice (the API
    # default, create_prorations), which is not paid yet: its extra credits wait with it.
    assert sql(app, "select sum(amount) from credit_entries") == [(3000,)]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda body, headers: (body.replace(b"invoice.paid", b"invoice.pain"), headers),
        lambda body, headers: (body, {}),
        lambda body, headers: (body, {"Stripe-Signature": "t=1,v1=deadbeef"}),
        lambda body, headers: (body, {"Stripe-Signature": signature(body, secret="whsec_other")}),
        lambda body, headers: (body, {"Stripe-Signature": signature(body, at=1_000_000_000)}),
    ],
    ids=["tampered-body", "missing", "garbage", "wrong-secret", "stale"],
)
def test_bad_signature_is_refused_and_nothing_processed(app, client, paid, tamper):
    [invoice_paid] = sandbox_events(app, ("invoice.paid",))
    body = json.dumps(invoice_paid).encode()
    body, headers = tamper(body, {"Stripe-Signature": signature(body)})
    response = client.post(
        "/webhooks/stripe", data=body, headers=headers, content_type="application/json"
    )
    assert response.status_code == 400
    assert sql(app, "select count(*) from webhook_events") == [(0,)]
    assert sql(app, "select count(*) from credit_entries") == [(0,)]


@pytest.mark.parametrize("config_overrides", [{"STRIPE_WEBHOOK_SECRET": ""}])
def test_no_secret_configured_refuses_everything(app, client, caplog):
    event = {
        "id": "evt_1",
        "type": "invoice.paid",
        "created": 1,
        "data": {"object": {"id": "in_1"}},
    }
    response = post_event(client, event)
    assert response.status_code == 503
    assert "STRIPE_WEBHOOK_SECRET is not configured" in caplog.text
    assert sql(app, "select count(*) from webhook_events") == [(0,)]


@pytest.mark.parametrize(
    "config_overrides",
    [{"SANDBOX_DELIVER_TO_SELF": False, "STRIPE_WEBHOOK_SECRET": "whsec_new,whsec_old"}],
)
def test_any_configured_secret_verifies_during_rotation(app, client):
    event = {"id": "evt_rot", "type": "balance.available", "created": 1, "data": {"object": {}}}
    assert post_event(client, event, secret="whsec_old").status_code == 200
    assert post_event(client, {**event, "id": "evt_rot2"}, secret="whsec_new").status_code == 200
    assert post_event(client, {**event, "id": "evt_rot3"}, secret="whsec_gone").status_code == 400


def test_unknown_event_type_is_acknowledged_and_ignored(app, client):
    event = {
        "id": "evt_unknown",
        "type": "radar.early_fraud_warning.created",
        "created": 5,
        "data": {"object": {}},
    }
    response = post_event(client, event)
    assert response.status_code == 200
    assert sql(app, "select type, status from webhook_events") == [
        ("radar.early_fraud_warning.created", "ignored")
    ]


def test_handler_exception_rolls_back_and_answers_500(app, client, paid, monkeypatch, runner):
    [invoice_paid] = sandbox_events(app, ("invoice.paid",))

    def crash_after_writing(subscription_id, user_id, now=None, cause=None):
        raise RuntimeError("disk full half-way")

    # The subscription and invoice rows are written first, then settling the credits crashes:
    # nothing may remain.
    monkeypatch.setattr(billing.sync, "settle_subscription", crash_after_writing)
    response = post_event(client, invoice_paid)
    assert response.status_code == 500
    assert sql(app, "select count(*) from subscriptions") == [(0,)]
    assert sql(app, "select count(*) from invoices") == [(0,)]
    assert sql(app, "select count(*) from credit_entries") == [(0,)]
    [(status, error)] = sql(app, "select status, error from webhook_events")
    assert status == "failed" and "disk full half-way" in error

    monkeypatch.undo()
    result = runner.invoke(args=["webhooks", "replay", "--failed"])
    assert result.exit_code == 0, result.output
    assert f"{invoice_paid['id']}: processed" in result.output
    assert sql(app, "select sum(amount) from credit_entries") == [(3000,)]


def test_replay_of_a_processed_event_changes_nothing(app, client, paid, runner):
    [invoice_paid] = sandbox_events(app, ("invoice.paid",))
    post_event(client, invoice_paid)
    result = runner.invoke(args=["webhooks", "replay", invoice_paid["id"]])
    assert result.exit_code == 0
    assert sql(app, "select count(*) from credit_entries") == [(1,)]
    assert runner.invoke(args=["webhooks", "replay", "evt_missing"]).exit_code != 0


def delete_customer_on_stripe(app, customer_id):
    with app.app_context():
        from webapp.stripe_gateway import get_gateway

        get_gateway().client.v1.customers.delete(customer_id)


def test_customer_deleted_unlinks_the_customer(app, client, paid):
    for event in sandbox_events(app):
        post_event(client, event)
    [(customer_id,)] = sql(app, "select stripe_customer_id from users")
    delete_customer_on_stripe(app, customer_id)
    [deleted] = sandbox_events(app, ("customer.deleted",))
    assert post_event(client, deleted).status_code == 200
    assert sql(app, "select stripe_customer_id, stripe_customer_generation from users") == [
        (None, 1)
    ]
    [(status, ended_at)] = sql(app, "select status, ended_at from subscriptions")
    assert status == "canceled" and ended_at is not None  # no more months of a yearly plan

    # Stripe sends customer.subscription.deleted too, in any order: arriving late, it must not
    # link the deleted customer to the user again (every later checkout would fail).
    [late] = sandbox_events(app, ("customer.subscription.deleted",))
    assert post_event(client, late).status_code == 200
    assert sql(app, "select stripe_customer_id from users") == [(None,)]


def test_customer_deleted_is_believed_only_when_stripe_says_so(app, client, paid):
    """A signed customer.deleted for a customer Stripe still has (a replayed test event, a
    mistake) changes nothing: like every other event, it is checked against Stripe."""
    for event in sandbox_events(app):
        post_event(client, event)
    [(customer_id,)] = sql(app, "select stripe_customer_id from users")
    event = {
        "id": "evt_del",
        "type": "customer.deleted",
        "created": 10,
        "data": {"object": {"id": customer_id, "object": "customer"}},
    }
    assert post_event(client, event).status_code == 200
    assert sql(app, "select stripe_customer_id, stripe_customer_generation from users") == [
        (customer_id, 0)
    ]
    assert sql(app, "select status from subscriptions") == [("active",)]


def test_subscribe_helper_flow_delivers_in_sync_mode(app, client, auth, user_id, monkeypatch):
    # Sanity check of the default wiring: with delivery on, paying alone fulfils.
    app.config["SANDBOX_DELIVER_TO_SELF"] = True
    auth.login()
    subscribe(client)
    assert sql(app, "select status from subscriptions") == [("active",)]
