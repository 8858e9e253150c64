"""GET /credits/balance and /credits/history (+ /api): API.md's examples replayed field by field,
paging and the type filter, in both flavours; the plan credits come from a real checkout against
the sandbox, usage through the service endpoint, a refund through Stripe."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.api.api_md import assert_like_api_md
from tests.api.conftest import Caller, assert_conforms, bearer
from tests.billing.member import Member
from tests.conftest import create_user
from webapp.billing.credits import add_entry
from webapp.extensions import db
from webapp.models import CreditEntry
from webapp.stripe_gateway import get_gateway

SERVICE_TOKEN = "service-token-for-the-test-suite-0123456789"

# API.md, "Credits": the examples as published (the shapes we must keep, value types included).
API_MD_BALANCE = {
    "balance": 450,
    "totalPurchased": 1000,
    "totalUsed": 550,
    "recentTransactions": [
        {
            "id": "txn_…",
            "type": "purchase",
            "amount": 500,
            "description": "Pro Pack",
            "createdAt": "2026-01-15T10:00:00Z",
        },
        {
            "id": "txn_…",
            "type": "usage",
            "amount": -50,
            "description": "llms.txt generation for example.com",
            "createdAt": "2026-01-20T14:30:00Z",
        },
    ],
}
API_MD_HISTORY_FIELDS = ["id", "type", "amount", "description", "siteId", "createdAt"]
API_MD_HISTORY = {"transactions": [], "total": 47, "hasMore": True}


@pytest.fixture
def config_overrides() -> dict[str, str]:
    return {"CREDITS_SERVICE_TOKEN": SERVICE_TOKEN}


def use(client, user_id: int, amount: int, key: str, site: str | None = None):
    body = {"userId": user_id, "amount": amount, "description": f"job {key}", "idempotencyKey": key}
    if site:
        body["siteId"] = site
    response = client.post("/api/v1/credits/usage", json=body, headers=bearer(SERVICE_TOKEN))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def balance(client, caller: Caller) -> dict[str, Any]:
    response = client.get(caller.path("/credits/balance"), headers=caller.headers)
    return assert_conforms(response, "GET", "/credits/balance" + caller.suffix)


def history(client, caller: Caller, query: str = "") -> dict[str, Any]:
    response = client.get(caller.path("/credits/history") + query, headers=caller.headers)
    return assert_conforms(response, "GET", "/credits/history" + caller.suffix)


def test_replays_api_md_balance_and_history_examples(app, client, caller, user_id):
    """A plan bought through Checkout, two generations spent: the published shapes, exactly."""
    with app.app_context():
        Member(app, user_id).subscribe("starter", "monthly")
        plan_credits = db.session.scalar(db.select(CreditEntry.amount))
    use(client, user_id, 50, "gen-1", site="example.com")
    use(client, user_id, 500, "gen-2")

    body = balance(client, caller)
    assert_like_api_md(body, API_MD_BALANCE, "balance")
    assert (body["balance"], body["totalPurchased"], body["totalUsed"]) == (
        plan_credits - 550,
        plan_credits,
        550,
    )
    recent = body["recentTransactions"]
    assert [(row["type"], row["amount"]) for row in recent] == [
        ("usage", -500),
        ("usage", -50),
        ("purchase", plan_credits),
    ]
    assert recent[1]["siteId"] == "example.com" and recent[0]["siteId"] is None

    page = history(client, caller)
    assert_like_api_md(page, API_MD_HISTORY, "history")
    assert (page["total"], page["hasMore"]) == (3, False)
    for row in page["transactions"]:
        assert sorted(row) == sorted(API_MD_HISTORY_FIELDS)  # the documented fields, no more
        assert_like_api_md(row, API_MD_BALANCE["recentTransactions"][0] | {"siteId": None})
    assert page["transactions"] == recent  # the same entries, the same words


def test_ids_are_opaque_and_stable(app, client, caller, user_id):
    with app.app_context():
        add_entry(user_id=user_id, amount=100, grant_key="g1", description="Grant")
        add_entry(user_id=user_id, amount=-10, grant_key="g2", description="Taken")
        db.session.commit()
        row_ids = {str(row_id) for row_id in db.session.scalars(db.select(CreditEntry.id))}
    first = [row["id"] for row in history(client, caller)["transactions"]]
    assert first == [row["id"] for row in history(client, caller)["transactions"]]
    assert len(set(first)) == 2
    assert all(re.fullmatch(r"txn_[0-9a-f]{24}", txn) for txn in first)
    assert not row_ids & {txn.removeprefix("txn_") for txn in first}


def test_history_pages_newest_first_without_overlap(app, client, caller, user_id):
    with app.app_context():
        add_entry(user_id=user_id, amount=1000, grant_key="grant", description="Plan")
        db.session.commit()
    keys = [f"job-{n}" for n in range(25)]
    for key in keys:
        use(client, user_id, 1, key)
    first = history(client, caller)  # default limit: 20
    second = history(client, caller, "?offset=20")
    assert (len(first["transactions"]), first["total"], first["hasMore"]) == (20, 26, True)
    assert (len(second["transactions"]), second["hasMore"]) == (6, False)
    shown = first["transactions"] + second["transactions"]
    assert len({row["id"] for row in shown}) == 26
    expected = [f"job {key}" for key in reversed(keys)] + ["Plan"]
    assert [row["description"] for row in shown] == expected
    small = history(client, caller, "?limit=5&offset=5")
    assert [row["id"] for row in small["transactions"]] == [row["id"] for row in shown[5:10]]
    assert len(history(client, caller, "?limit=100")["transactions"]) == 26


def test_history_filters_by_type(app, client, caller, user_id):
    """Plan credits, usage, a reversal and a refund taken back through Stripe."""
    with app.app_context():
        member = Member(app, user_id)
        member.subscribe("professional", "monthly")
    use(client, user_id, 100, "kept")
    use(client, user_id, 40, "failed")
    reversed_ = client.post(
        "/api/v1/credits/usage/reverse",
        json={"idempotencyKey": "failed"},
        headers=bearer(SERVICE_TOKEN),
    )
    assert reversed_.status_code == 200
    with app.app_context():
        v1 = get_gateway().client.v1
        [charge] = v1.charges.list(params={"customer": member.customer_id()}).data
        v1.refunds.create(params={"payment_intent": charge.payment_intent})

    by_type = {t: history(client, caller, f"?type={t}") for t in ("purchase", "usage", "refund")}
    assert [row["amount"] for row in by_type["purchase"]["transactions"]] == [3000]
    assert [row["amount"] for row in by_type["usage"]["transactions"]] == [40, -40, -100]
    assert [row["amount"] for row in by_type["refund"]["transactions"]] == [-3000]
    assert all(
        row["type"] == name for name, page in by_type.items() for row in page["transactions"]
    )
    body = balance(client, caller)
    # Net usage; the purchase counted once; the balance is what the three types sum to.
    assert (body["totalPurchased"], body["totalUsed"], body["totalTakenBack"]) == (3000, 100, 3000)
    assert body["balance"] == 3000 - 100 - 3000


def test_only_the_callers_own_entries(app, client, caller):
    other = create_user(app, email="someone@example.com")
    with app.app_context():
        add_entry(user_id=other, amount=100, grant_key="theirs", description="Theirs")
        db.session.commit()
    assert history(client, caller) == {"transactions": [], "total": 0, "hasMore": False}
    assert balance(client, caller)["balance"] == 0


@pytest.mark.parametrize(
    "query",
    [
        "?limit=0",
        "?limit=101",
        "?limit=abc",
        "?offset=-1",
        "?type=grant",
        "?type=",
        "?type=USAGE",
        "?type=usage&type=refund",
        "?kind=usage",
    ],
)
def test_bad_history_queries_are_validation_errors(client, caller, query):
    response = client.get(caller.path("/credits/history") + query, headers=caller.headers)
    body = assert_conforms(response, "GET", "/credits/history" + caller.suffix)
    assert (response.status_code, body["error"]["code"]) == (400, "validation_error")


def test_history_without_a_credential_401(client):
    for suffix in ("", "/api"):
        response = client.get(f"/api/v1/credits/history{suffix}")
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "unauthorized"
