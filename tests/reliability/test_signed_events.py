"""Signed but malformed events: an event carrying a valid signature is still checked for shape,
for a timestamp that is not in the future, and (customer.deleted) against Stripe itself."""

from __future__ import annotations

import logging
import time

import pytest

from tests.billing_helpers import post_event, sandbox_events, subscribe
from tests.conftest import AuthActions, create_user, sql

GROUP = "signed but malformed events"


def event(**fields):
    base = {
        "id": "evt_malformed",
        "type": "invoice.paid",
        "created": int(time.time()),
        "data": {"object": {"id": "in_x", "object": "invoice"}},
    }
    return {**base, **fields}


MALFORMED = [
    event(type={"nested": "object"}),
    event(type=["invoice.paid"]),
    event(type=""),
    event(type="x" * 500),
    event(id=["evt_1", "evt_2"]),
    event(id={"id": "evt_1"}),
    event(id=12),
    event(id="e" * 300),
    event(id="evt_\x00"),
    event(id="evt_\ud800"),
    event(type="invoice.paid\x00"),
    event(created="yesterday"),
    event(created=1.5),
    event(created=True),
    event(created=-1),
    event(created=10**30),
    event(data="nothing"),
    event(data={"object": ["in_x"]}),
    event(data={"object": {"id": ["in_x"]}}),
    event(data={"object": {"object": "invoice"}}),
]


@pytest.mark.parametrize("malformed", MALFORMED, ids=range(len(MALFORMED)))
def test_a_signed_malformed_event_gets_a_json_400_and_a_log_line(
    app, client, caplog, figures, malformed
):
    with caplog.at_level(logging.ERROR, logger="webapp.webhooks.views"):
        response = post_event(client, malformed)
    refused = response.status_code == 400 and response.is_json
    assert figures.attack(GROUP, refused=refused), (response.status_code, malformed)
    assert response.get_json()["received"] is False
    assert "malformed event" in caplog.text
    assert sql(app, "select count(*) from webhook_events") == [(0,)]


@pytest.mark.parametrize("ahead", [301, 3600, 10 * 365 * 86400])
def test_a_signature_stamped_in_the_future_is_refused(client, figures, ahead):
    """The SDK's tolerance only looks back; a future stamp would keep a captured delivery
    replayable until then."""
    response = post_event(client, event(type="ping"), at=int(time.time()) + ahead)
    assert figures.attack(GROUP, refused=response.status_code == 400), response.status_code
    assert response.get_json()["message"] == "invalid signature"


def test_a_signature_a_few_seconds_ahead_is_clock_skew_and_accepted(client):
    response = post_event(client, event(type="ping"), at=int(time.time()) + 30)
    assert response.status_code == 200


def test_customer_deleted_for_a_live_customer_changes_nothing(app, figures):
    app.config["SANDBOX_DELIVER_TO_SELF"] = True
    create_user(app)
    client = app.test_client()
    AuthActions(app, client).login()
    subscribe(client)
    [(customer_id,)] = sql(app, "select stripe_customer_id from users")
    forged = event(
        id="evt_forged_delete",
        type="customer.deleted",
        data={"object": {"id": customer_id, "object": "customer", "deleted": True}},
    )
    assert post_event(client, forged).status_code == 200
    unchanged = sql(app, "select stripe_customer_id from users") == [(customer_id,)]
    assert figures.attack(GROUP, refused=unchanged)
    assert sql(app, "select status from subscriptions") == [("active",)]
    # The real deletion, read back from Stripe, is applied.
    with app.app_context():
        from webapp.stripe_gateway import get_gateway

        get_gateway().client.v1.customers.delete(customer_id)
    [deleted] = sandbox_events(app, ("customer.deleted",))
    assert post_event(client, deleted).status_code == 200
    assert sql(app, "select stripe_customer_id from users") == [(None,)]
