"""GET /billing/invoices (+ /api): the billing history over the API, in both flavours, against
the sandbox through the real SDK; every response checked against the OpenAPI document."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.api.conftest import Caller, assert_conforms
from tests.billing.member import Member
from tests.conftest import create_user
from webapp.extensions import db
from webapp.models import Invoice
from webapp.stripe_gateway import get_gateway

PATH = "/billing/invoices"


def get(client, caller: Caller, query: str = ""):
    return client.get(caller.path(PATH) + query, headers=caller.headers)


def test_no_invoices_yet(client, caller):
    body = assert_conforms(get(client, caller), "GET", PATH + caller.suffix)
    assert body == {"invoices": [], "total": 0, "hasMore": False}


def test_invoices_newest_first_paged_as_stripe_has_them(app, client, caller, user_id):
    with app.app_context():
        member = Member(app, user_id)
        member.subscribe("starter", "monthly")
        member.advance(31)
        member.advance(31)
        params = {"customer": member.customer_id()}
        stripe_list = list(get_gateway().client.v1.invoices.list(params=params).data)
    assert len(stripe_list) == 3
    first = assert_conforms(get(client, caller, "?limit=2"), "GET", PATH + caller.suffix)
    rest = assert_conforms(get(client, caller, "?limit=2&offset=2"), "GET", PATH + caller.suffix)
    assert (first["total"], first["hasMore"], rest["total"], rest["hasMore"]) == (3, True, 3, False)
    shown = first["invoices"] + rest["invoices"]
    assert [row["id"] for row in shown] == [invoice.id for invoice in stripe_list]
    for row, invoice in zip(shown, stripe_list, strict=True):
        assert row == {
            "id": invoice.id,
            "number": invoice.number,
            "status": "paid",
            "currency": "usd",
            "subtotalCents": invoice.subtotal,
            "discountCents": 0,
            "taxCents": 0,
            "totalCents": invoice.total,
            "amountPaidCents": invoice.amount_paid,
            "amountRefundedCents": 0,
            "createdAt": datetime.fromtimestamp(invoice.created, UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "hostedInvoiceUrl": invoice.hosted_invoice_url,
            "invoicePdfUrl": invoice.invoice_pdf,
        }
    # The default page holds them all.
    assert len(get(client, caller).get_json()["invoices"]) == 3


def test_a_refund_shows_in_the_status(app, client, caller, user_id):
    with app.app_context():
        member = Member(app, user_id)
        member.subscribe("professional", "monthly")
        v1 = get_gateway().client.v1
        [charge] = v1.charges.list(params={"customer": member.customer_id()}).data
        v1.refunds.create(params={"payment_intent": charge.payment_intent, "amount": 99})
    [row] = assert_conforms(get(client, caller), "GET", PATH + caller.suffix)["invoices"]
    assert (row["status"], row["amountRefundedCents"]) == ("partially_refunded", 99)


def test_only_the_callers_own_invoices(app, client, caller):
    other = create_user(app, email="someone@example.com")
    with app.app_context():
        db.session.add(
            Invoice(
                id="in_someone_else",
                user_id=other,
                status="paid",
                currency="usd",
                total=499,
                amount_paid=499,
                created=datetime.now(UTC),
            )
        )
        db.session.commit()
    assert get(client, caller).get_json()["total"] == 0


@pytest.mark.parametrize(
    "query",
    [
        "?limit=0",
        "?limit=101",
        "?limit=abc",
        "?limit=",
        "?offset=-1",
        "?offset=1.5",
        "?limit=%EF%BC%91",
        "?limt=5",
        "?limit=1&=null",
        "?limit=1&limit=2",
    ],
)
def test_bad_paging_is_a_validation_error(client, caller, query):
    response = get(client, caller, query)
    body = assert_conforms(response, "GET", PATH + caller.suffix)
    assert (response.status_code, body["error"]["code"]) == (400, "validation_error")


def test_without_a_credential_401(client):
    for suffix in ("", "/api"):
        response = client.get(f"/api/v1{PATH}{suffix}")
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "unauthorized"
