"""Billing on objects shaped exactly as real Stripe sends them, not as our sandbox makes them.

A small HTTP server plays Stripe with Stripe's own example objects (../shared/stripe/
fixtures3.json), changed only where the scenario needs it, and the app talks to it in real-key
mode through the SDK's HTTP client. The scenario is the one that once granted the wrong plan:
a customer bought Business, switched to Starter in the portal, and then Starter was re-priced
(`stripe sync-catalog` moved the lookup key to a new price and archived the old one). Real
Stripe then sends:

- the subscription's metadata (which still says Business: it was set at checkout) on the
  subscription and on every invoice line;
- invoice lines naming their price by id only (`pricing.price_details.price`, unexpanded);
- the subscription item's price as it is now: archived, without its lookup key.

The price's own metadata (`plan_id`, `cycle`, written by catalog sync) is what says Starter.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.billing_helpers import signature
from tests.conftest import make_app, sql
from tests.sandbox.test_contract import FIXTURES
from webapp.extensions import db
from webapp.models import User

WEBHOOK_SECRET = "whsec_real_shapes_test"
NOW = int(time.time())
PERIOD = (NOW - 86400, NOW - 86400 + 30 * 86400)
CHECKOUT_METADATA = {"user_id": "1", "plan": "business", "cycle": "monthly"}


def example(kind: str, **changes: Any) -> dict[str, Any]:
    obj = copy.deepcopy(EXAMPLES[kind])
    obj.update(changes)
    return obj


def stripe_objects() -> dict[str, Any]:
    """The objects of the scenario, by the path the SDK asks for."""
    old_starter = example(
        "price",
        id="price_starter_old",
        active=False,  # archived when the re-price created a new Starter price
        lookup_key=None,  # moved to the new price by transfer_lookup_key
        metadata={"plan_id": "starter", "cycle": "monthly"},
        unit_amount=499,
        unit_amount_decimal="499",
        transform_quantity=None,
    )
    item = example(
        "subscription_item",
        id="si_1",
        subscription="sub_1",
        price=old_starter,
        current_period_start=PERIOD[0],
        current_period_end=PERIOD[1],
    )
    subscription = example(
        "subscription",
        id="sub_1",
        customer="cus_1",
        status="active",
        metadata=CHECKOUT_METADATA,
        items={"object": "list", "data": [item], "has_more": False, "url": "/v1/x"},
        schedule=None,
        cancel_at=None,
        cancel_at_period_end=False,
        ended_at=None,
    )
    line = example(
        "line_item",
        id="il_1",
        invoice="in_1",
        amount=499,
        metadata=CHECKOUT_METADATA,  # the subscription's metadata, as real Stripe shows it
        period={"start": PERIOD[0], "end": PERIOD[1]},
        parent={
            "type": "subscription_item_details",
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": "sub_1",
                "subscription_item": "si_1",
            },
        },
        pricing={
            "type": "price_details",
            "price_details": {"price": "price_starter_old", "product": "prod_starter"},
            "unit_amount_decimal": "499",
        },
    )
    invoice = example(
        "invoice",
        id="in_1",
        customer="cus_1",
        status="paid",
        billing_reason="subscription_cycle",
        total=499,
        amount_paid=499,
        created=PERIOD[0],
        parent={
            "type": "subscription_details",
            "quote_details": None,
            "subscription_details": {"metadata": CHECKOUT_METADATA, "subscription": "sub_1"},
        },
        lines={"object": "list", "data": [line], "has_more": False, "url": "/v1/invoices/in_1"},
    )
    payment = example(
        "invoice_payment",
        id="inpay_1",
        invoice="in_1",
        status="paid",
        amount_paid=499,
        currency="usd",
        payment={"type": "payment_intent", "payment_intent": "pi_1"},
    )
    charge = example("charge", id="ch_1", amount=499, payment_intent="pi_1", customer="cus_1")
    return {
        "/v1/invoices/in_1": invoice,
        "/v1/prices/price_starter_old": old_starter,
        "/v1/subscriptions/sub_1": subscription,
        # Lists answer only the filter real Stripe needs for them; any other, an empty list.
        ("/v1/invoice_payments", "invoice=in_1"): _list([payment]),
        ("/v1/invoice_payments", "payment%5Bpayment_intent%5D=pi_1"): _list([payment]),
        ("/v1/charges", "payment_intent=pi_1"): _list([charge]),
    }


def _list(data: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": False, "url": "/v1/x"}


class RecordedStripe:
    """Answers GETs with the scenario's objects and logs every request it was sent.

    An object is found by its path, or, for a list, by its path and the one filter real Stripe
    needs for it (any other filter gets an empty list, so a wrong filter shows).
    """

    def __init__(self, objects: dict[Any, Any]) -> None:
        self.objects, self.requests = objects, []

    def __call__(self, environ, start_response):
        request = Request(environ)
        query = request.query_string.decode()
        self.requests.append((request.method, request.path, parse_qs(query)))
        body = self.objects.get(request.path) if request.method == "GET" else None
        lists = {key[1]: value for key, value in self.objects.items() if key[0] == request.path}
        if body is None and lists:
            body = next((lists[f] for f in query.split("&") if f in lists), _list([]))
        if body is None:
            error = {"error": {"type": "invalid_request_error", "message": "not in this test"}}
            return Response(json.dumps(error), 404, content_type="application/json")(
                environ, start_response
            )
        return Response(json.dumps(body), content_type="application/json")(environ, start_response)


@pytest.fixture(scope="module")
def examples() -> None:
    if not FIXTURES.exists():
        pytest.skip(f"Stripe's example objects are not at {FIXTURES} (set STRIPE_FIXTURES)")
    global EXAMPLES
    EXAMPLES = json.loads(FIXTURES.read_text())["resources"]


EXAMPLES: dict[str, Any] = {}


@pytest.fixture
def stripe_server(examples) -> Iterator[RecordedStripe]:
    recorded = RecordedStripe(stripe_objects())
    server = make_server("127.0.0.1", 0, recorded, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    recorded.url = f"http://127.0.0.1:{server.server_port}"  # type: ignore[attr-defined]
    yield recorded
    server.shutdown()


@pytest.fixture
def real_app(_schema, database_url, stripe_server):
    app = make_app(
        database_url,
        STRIPE_SECRET_KEY="sk_test_real_shapes",
        STRIPE_API_BASE=stripe_server.url,
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_MAX_NETWORK_RETRIES=0,
    )
    with app.app_context():
        user = User(id=1, email="ada@example.com", stripe_customer_id="cus_1")
        user.set_password("correct horse battery")
        db.session.add(user)
        db.session.commit()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    from tests.conftest import _empty_all_tables

    _empty_all_tables(database_url)


def deliver(app, event_type: str, obj: dict[str, Any], event_id: str) -> None:
    event = {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": NOW,
        "data": {"object": obj},
    }
    payload = json.dumps(event).encode()
    response = app.test_client().post(
        "/webhooks/stripe",
        data=payload,
        headers={"Stripe-Signature": signature(payload, WEBHOOK_SECRET)},
        content_type="application/json",
    )
    assert response.status_code == 200, response.get_data(as_text=True)


def test_a_renewal_after_a_switch_and_a_re_price_grants_the_plan_the_price_is_for(
    real_app, stripe_server
):
    deliver(real_app, "invoice.paid", {"id": "in_1", "object": "invoice"}, "evt_real_1")
    assert sql(real_app, "select plan_id, cycle from subscriptions") == [("starter", "monthly")]
    assert sql(real_app, "select amount, description from credit_entries") == [
        (1000, f"Starter plan: monthly credits ({time.strftime('%b %Y', time.gmtime(PERIOD[0]))})")
    ]
    # The line's price was named by id only: the app asked for it.
    paths = [path for _method, path, _query in stripe_server.requests]
    assert "/v1/prices/price_starter_old" in paths


def test_a_refund_found_through_the_payment_takes_the_credits_back(real_app, stripe_server):
    """charge.refunded names a PaymentIntent; its InvoicePayment names the invoice (basil)."""
    deliver(real_app, "invoice.paid", {"id": "in_1", "object": "invoice"}, "evt_real_1")
    [charges] = [
        v for k, v in stripe_server.objects.items() if k == ("/v1/charges", "payment_intent=pi_1")
    ]
    charges["data"][0].update(amount_refunded=499, refunded=True)
    charge = {"id": "ch_1", "object": "charge", "payment_intent": "pi_1", "amount_refunded": 499}
    deliver(real_app, "charge.refunded", charge, "evt_real_2")
    assert sql(real_app, "select sum(amount) from credit_entries") == [(0,)]
    asked = [query for _m, path, query in stripe_server.requests if path == "/v1/invoice_payments"]
    assert {
        "payment[type]": ["payment_intent"],
        "payment[payment_intent]": ["pi_1"],
        "limit": ["1"],
    } in asked


def test_a_credit_note_refunded_outside_stripe_takes_its_share_back(real_app, stripe_server):
    """A note's `refunds` may be refunds recorded on a PaymentRecord (`type`
    `payment_record_refund`, SDK `_credit_note.py`): money back that no charge shows."""
    deliver(real_app, "invoice.paid", {"id": "in_1", "object": "invoice"}, "evt_real_1")
    stripe_server.objects["/v1/invoices/in_1"]["post_payment_credit_notes_amount"] = 200
    note = example(
        "credit_note",
        id="cn_1",
        invoice="in_1",
        customer="cus_1",
        status="issued",
        type="post_payment",
        total=200,
        amount=200,
        pre_payment_amount=0,
        post_payment_amount=200,
        out_of_band_amount=None,
        refunds=[
            {
                "amount_refunded": 200,
                "refund": None,
                "type": "payment_record_refund",
                "payment_record_refund": {"payment_record": "pr_1", "refund_group": "rg_1"},
            }
        ],
    )
    stripe_server.objects[("/v1/credit_notes", "invoice=in_1")] = _list([note])
    deliver(real_app, "credit_note.created", note, "evt_real_2")
    # 1,000 credits x 2.99/4.99 stayed paid, rounded down.
    assert sql(real_app, "select sum(amount) from credit_entries") == [(599,)]
