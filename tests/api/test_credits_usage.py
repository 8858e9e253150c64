"""POST /credits/usage and /credits/usage/reverse: our generation service spends a member's
credits, once per idempotency key, never below zero, and gives a failed generation's back once."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import assert_conforms, bearer, issue_api_key, issue_token
from tests.conftest import create_user
from webapp.billing.credits import add_entry
from webapp.extensions import db
from webapp.models import CreditEntry, User
from webapp.models.base import utcnow

TOKEN = "service-token-for-the-test-suite-0123456789"
NEXT_TOKEN = "the-next-service-token-while-rotating-0123"
USAGE, REVERSE = "/credits/usage", "/credits/usage/reverse"


@pytest.fixture
def config_overrides() -> dict[str, str]:
    return {"CREDITS_SERVICE_TOKEN": f"{TOKEN},{NEXT_TOKEN}"}


@pytest.fixture
def funded(app, user_id) -> int:
    """The member with 100 plan credits."""
    with app.app_context():
        add_entry(user_id=user_id, amount=100, grant_key="plan", description="Plan credits")
        db.session.commit()
    return user_id


def body(user_id: int, **changes: Any) -> dict[str, Any]:
    return {
        "userId": user_id,
        "amount": 30,
        "description": "llms.txt generation for example.com",
        "siteId": "site_42",
        "idempotencyKey": "gen-0001",
    } | changes


def post(client, path: str, payload: Any, token: str = TOKEN):
    response = client.post(f"/api/v1{path}", json=payload, headers=bearer(token))
    return response, assert_conforms(response, "POST", path)


def ledger(app, user_id: int) -> list[tuple[str, int, str]]:
    with app.app_context():
        rows = db.session.scalars(
            db.select(CreditEntry).where(CreditEntry.user_id == user_id).order_by(CreditEntry.id)
        )
        return [(row.type, row.amount, row.kind) for row in rows]


def test_a_debit_answers_the_new_balance_and_the_entry(app, client, funded):
    response, answer = post(client, USAGE, body(funded))
    assert response.status_code == 200
    assert response.headers["Idempotent-Replayed"] == "false"
    entry = answer["transaction"]
    assert answer["balance"] == 70
    assert (entry["type"], entry["amount"], entry["siteId"]) == ("usage", -30, "site_42")
    assert entry["description"] == "llms.txt generation for example.com"
    assert entry["id"].startswith("txn_")
    assert ledger(app, funded)[-1] == ("usage", -30, "usage")


def test_the_same_key_and_request_debits_once_and_answers_the_same(app, client, funded):
    _first, first_body = post(client, USAGE, body(funded))
    post(client, USAGE, body(funded, idempotencyKey="gen-0002", amount=5))  # balance moves on
    again, again_body = post(client, USAGE, body(funded))
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again_body == first_body  # balance 70: the first answer, not today's 65
    assert [amount for _type, amount, _kind in ledger(app, funded)] == [100, -30, -5]


@pytest.mark.parametrize(
    "change",
    [
        {"amount": 31},
        {"description": "another job"},
        {"siteId": "site_43"},
        {"siteId": None},
    ],
)
def test_the_same_key_with_another_request_is_refused(app, client, funded, change):
    post(client, USAGE, body(funded))
    response, answer = post(client, USAGE, body(funded, **change))
    assert (response.status_code, answer["error"]["code"]) == (409, "idempotency_key_reused")
    assert [amount for _type, amount, _kind in ledger(app, funded)] == [100, -30]


def test_the_same_key_for_another_member_is_refused(app, client, funded):
    other = create_user(app, email="someone@example.com")
    with app.app_context():
        add_entry(user_id=other, amount=100, grant_key="their-plan", description="Plan")
        db.session.commit()
    post(client, USAGE, body(funded))
    response, answer = post(client, USAGE, body(other))
    assert (response.status_code, answer["error"]["code"]) == (409, "idempotency_key_reused")
    assert ledger(app, other) == [("purchase", 100, "grant")]


def test_short_balance_is_402_with_balance_and_needed_and_writes_nothing(app, client, funded):
    response, answer = post(client, USAGE, body(funded, amount=101))
    assert response.status_code == 402
    assert answer["error"]["code"] == "insufficient_credits"
    assert (answer["balance"], answer["needed"]) == (100, 101)
    assert ledger(app, funded) == [("purchase", 100, "grant")]
    # Nothing was recorded under the key: once the balance allows, the same key goes through.
    with app.app_context():
        add_entry(user_id=funded, amount=1, grant_key="top-up", description="Top-up")
        db.session.commit()
    response, answer = post(client, USAGE, body(funded, amount=101))
    assert (response.status_code, answer["balance"]) == (200, 0)


def test_spending_the_whole_balance_reaches_zero_never_below(app, client, funded):
    assert post(client, USAGE, body(funded, amount=100))[1]["balance"] == 0
    response, answer = post(client, USAGE, body(funded, amount=1, idempotencyKey="gen-2"))
    assert (response.status_code, answer["balance"], answer["needed"]) == (402, 0, 1)


def test_a_negative_balance_after_a_refund_spends_nothing(app, client, user_id):
    with app.app_context():
        add_entry(user_id=user_id, amount=-50, grant_key="taken", description="Refund")
        db.session.commit()
    response, answer = post(client, USAGE, body(user_id, amount=1))
    assert (response.status_code, answer["balance"]) == (402, -50)


def test_a_reversal_gives_the_credits_back_once(app, client, funded):
    post(client, USAGE, body(funded))
    response, answer = post(client, REVERSE, {"idempotencyKey": "gen-0001"})
    assert response.status_code == 200 and response.headers["Idempotent-Replayed"] == "false"
    entry = answer["transaction"]
    assert (answer["balance"], entry["type"], entry["amount"], entry["siteId"]) == (
        100,
        "usage",
        30,
        "site_42",
    )
    assert entry["description"] == "Reversed: llms.txt generation for example.com"
    again, again_body = post(client, REVERSE, {"idempotencyKey": "gen-0001"})
    assert again.headers["Idempotent-Replayed"] == "true" and again_body == answer
    # The usage key stays spent: replaying the debit answers its first answer, debits nothing.
    replay, replay_body = post(client, USAGE, body(funded))
    assert replay.headers["Idempotent-Replayed"] == "true" and replay_body["balance"] == 70
    assert [amount for _type, amount, _kind in ledger(app, funded)] == [100, -30, 30]
    balance = client.get("/api/v1/credits/balance", headers=bearer(issue_token(client))).get_json()
    assert (balance["balance"], balance["totalPurchased"], balance["totalUsed"]) == (100, 100, 0)


def test_reversing_an_unknown_key_is_404(client, funded):
    response, answer = post(client, REVERSE, {"idempotencyKey": "never-used"})
    assert (response.status_code, answer["error"]["code"]) == (404, "usage_not_found")


def test_an_unknown_user_is_404(client, funded):
    response, answer = post(client, USAGE, body(funded + 1000))
    assert (response.status_code, answer["error"]["code"]) == (404, "user_not_found")


@pytest.mark.parametrize("state", ["deactivated_at", "deleted_at"])
def test_inactive_accounts_cannot_spend(app, client, funded, state):
    with app.app_context():
        setattr(db.session.get(User, funded), state, utcnow())
        db.session.commit()
    response, answer = post(client, USAGE, body(funded))
    assert (response.status_code, answer["error"]["code"]) == (409, "account_inactive")
    assert ledger(app, funded) == [("purchase", 100, "grant")]


def test_a_deleted_account_gets_nothing_back_a_deactivated_one_does(app, client, funded):
    post(client, USAGE, body(funded))
    post(client, USAGE, body(funded, idempotencyKey="gen-0002"))
    with app.app_context():
        db.session.get(User, funded).deactivated_at = utcnow()
        db.session.commit()
    assert post(client, REVERSE, {"idempotencyKey": "gen-0001"})[0].status_code == 200
    with app.app_context():
        db.session.get(User, funded).deleted_at = utcnow()
        db.session.commit()
    response, answer = post(client, REVERSE, {"idempotencyKey": "gen-0002"})
    assert (response.status_code, answer["error"]["code"]) == (409, "account_inactive")


def test_both_configured_tokens_work_while_rotating(client, funded):
    assert post(client, USAGE, body(funded), token=NEXT_TOKEN)[0].status_code == 200


def test_only_the_service_credential_is_accepted(app, client, funded):
    for credential in (
        None,
        "wrong",
        TOKEN[:-1],
        TOKEN + "x",
        issue_token(client),
        issue_api_key(app, funded),
    ):
        headers = bearer(credential) if credential else {}
        for path, payload in ((USAGE, body(funded)), (REVERSE, {"idempotencyKey": "x"})):
            response = client.post(f"/api/v1{path}", json=payload, headers=headers)
            answer = assert_conforms(response, "POST", path)
            assert (response.status_code, answer["error"]["code"]) == (401, "unauthorized")
    assert ledger(app, funded) == [("purchase", 100, "grant")]


@pytest.mark.parametrize("config_overrides", [{"CREDITS_SERVICE_TOKEN": ""}])
def test_without_a_configured_token_everything_is_refused(app, client, funded):
    for credential in ("", TOKEN):
        response = client.post(f"/api/v1{USAGE}", json=body(funded), headers=bearer(credential))
        answer = assert_conforms(response, "POST", USAGE)
        assert (response.status_code, answer["error"]["code"]) == (503, "usage_not_configured")


@pytest.mark.parametrize(
    "change",
    [
        {"amount": 0},
        {"amount": -5},
        {"amount": 1.5},
        {"amount": "5"},
        {"amount": True},
        {"amount": 1_000_001},
        {"userId": "1"},
        {"userId": 0},
        {"description": ""},
        {"description": "   "},
        {"description": "x" * 256},
        {"siteId": 7},
        {"siteId": "s" * 256},
        {"idempotencyKey": ""},
        {"idempotencyKey": "has space"},
        {"idempotencyKey": "k" * 201},
        {"idempotencyKey": 12},
        {"extra": 1},
    ],
)
def test_bad_requests_are_validation_errors(app, client, funded, change):
    response, answer = post(client, USAGE, body(funded, **change))
    assert (response.status_code, answer["error"]["code"]) == (400, "validation_error")
    assert ledger(app, funded) == [("purchase", 100, "grant")]


@pytest.mark.parametrize("missing", ["userId", "amount", "description", "idempotencyKey"])
def test_required_fields(client, funded, missing):
    payload = body(funded)
    del payload[missing]
    response, answer = post(client, USAGE, payload)
    assert (response.status_code, answer["error"]["code"]) == (400, "validation_error")


def test_no_site_is_fine(app, client, funded):
    payload = body(funded)
    del payload["siteId"]
    _response, answer = post(client, USAGE, payload)
    assert answer["transaction"]["siteId"] is None
    # siteId null is the same request as no siteId.
    assert post(client, USAGE, body(funded, siteId=None))[0].status_code == 200
