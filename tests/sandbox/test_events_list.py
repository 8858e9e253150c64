"""`GET /v1/events` filters as Stripe's does (docs.stripe.com/api/events/list): `created`
ranges, `types`, `type` with a `*` wildcard, `delivery_success`, and cursor paging; and the
"lost" webhook fault, whose events no endpoint ever gets."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from tests.sandbox.helpers import advance, sandbox_of, subscribe
from webapp.stripe_gateway import StripeGateway


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    # Deliveries to the site's own endpoint, so `delivery_success` has something to report.
    return {"SANDBOX_DELIVER_TO_SELF": True}


def listed(gateway: StripeGateway, **params: Any) -> list[Any]:
    return list(gateway.client.v1.events.list(params={"limit": 3, **params}).auto_paging_iter())


def test_created_ranges_types_and_wildcards_filter_the_list(app, gateway):
    subscribe(app, gateway)
    advance(app, seconds=60)
    middle = gateway.now() - 1
    subscribe(app, gateway, key="2", email="bob@example.com")
    everything = listed(gateway)
    assert len(everything) > 3  # more than a page: auto-paging follows starting_after
    assert [e.created for e in everything] == sorted((e.created for e in everything), reverse=True)
    newer = listed(gateway, created={"gt": middle})
    assert newer and all(e.created > middle for e in newer)
    assert {e.id for e in newer} == {e.id for e in everything if e.created > middle}
    upto = listed(gateway, created={"lte": middle})
    assert {e.id for e in upto} | {e.id for e in newer} == {e.id for e in everything}
    moment = everything[0].created
    exactly = listed(gateway, created=moment)
    assert exactly and all(e.created == moment for e in exactly)
    types = ["invoice.paid", "customer.subscription.created"]
    assert {e.type for e in listed(gateway, types=types)} == set(types)
    grouped = {e.type for e in listed(gateway, type="customer.subscription.*")}
    assert "customer.subscription.created" in grouped
    assert grouped == {e.type for e in everything if e.type.startswith("customer.subscription.")}


def test_type_and_types_together_or_too_many_types_are_refused(app, gateway):
    with pytest.raises(stripe.InvalidRequestError, match="either `type` or `types`"):
        gateway.client.v1.events.list(params={"type": "invoice.paid", "types": ["invoice.paid"]})
    with pytest.raises(stripe.InvalidRequestError, match="at most 20"):
        gateway.client.v1.events.list(params={"types": [f"t{n}" for n in range(21)]})
    with pytest.raises(stripe.InvalidRequestError, match="unknown parameter"):
        gateway.client.v1.events.list(params={"created": {"after": 1}})  # type: ignore[typeddict-item]


def test_lost_events_are_listed_as_undelivered_until_an_endpoint_gets_them(app, gateway):
    subscribe(app, gateway)
    assert listed(gateway, delivery_success=False) == []
    delivered = {e.id for e in listed(gateway, delivery_success=True)}
    assert delivered == {e.id for e in listed(gateway)}
    sandbox_of(app).faults.set_webhooks("lost")
    advance(app, days=31)  # a renewal whose events no endpoint gets
    lost = listed(gateway, delivery_success=False)
    assert "invoice.paid" in {e.type for e in lost}
    assert not {e.id for e in lost} & delivered
    assert not {e.id for e in lost} & {e.id for e in listed(gateway, delivery_success=True)}
