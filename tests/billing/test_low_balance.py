"""Low balance: one "credits low" mail per downward crossing of the member's threshold, written
in the transaction that crossed it (usage debits from POST /credits/usage included), and a
banner on the site's pages while the balance stands below it (README "Low balance")."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import func, select

from tests.api.conftest import bearer
from tests.billing.member import Member
from tests.conftest import create_user, csrf_token
from webapp.billing.credits import add_entry
from webapp.billing.low_balance import is_low
from webapp.emails.views import _save_threshold
from webapp.extensions import db
from webapp.models import CreditEntry, OutgoingMail, User

TOKEN = "service-token-for-the-low-balance-test-0123"
AMOUNTS = st.integers(min_value=1, max_value=300)
BANNER = 'data-testid="low-balance-banner"'


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    # Kept, not delivered, so every queued row stays to be counted; a fixed default threshold.
    return {
        "CREDITS_SERVICE_TOKEN": TOKEN,
        "MAIL_DELIVER_AFTER_COMMIT": False,
        "CREDITS_LOW_THRESHOLD": 100,
    }


def _low_mails(app: Flask, user_id: int) -> list[OutgoingMail]:
    with app.app_context():
        return list(
            db.session.scalars(
                select(OutgoingMail)
                .where(OutgoingMail.user_id == user_id, OutgoingMail.kind == "credits_low")
                .order_by(OutgoingMail.id)
            )
        )


def _use(client, user_id: int, amount: int, key: str | None = None):
    return client.post(
        "/api/v1/credits/usage",
        json={
            "userId": user_id,
            "amount": amount,
            "description": f"generation of {amount}",
            "idempotencyKey": key or uuid.uuid4().hex,
        },
        headers=bearer(TOKEN),
    )


def _ledger(app: Flask, user_id: int, amount: int) -> None:
    with app.app_context():
        assert add_entry(
            user_id=user_id, amount=amount, grant_key=f"t:{uuid.uuid4()}", description="test"
        )
        db.session.commit()


class CrossingMachine(RuleBasedStateMachine):
    """Grants, take-backs (refunds: may go below zero), usage debits and their reversals, and
    new thresholds chosen on the way; the model counts the downward crossings."""

    app: Flask

    def __init__(self) -> None:
        super().__init__()
        self.client = self.app.test_client()
        self.user_id = create_user(self.app, email=f"{uuid.uuid4().hex}@example.com")
        self.balance, self.threshold, self.crossings, self.entries = 0, 100, 0, 0
        self.debits: list[tuple[str, int]] = []  # (key, amount) not reversed yet

    def _moved(self, change: int) -> None:
        before, self.balance = self.balance, self.balance + change
        self.entries += 1
        if self.threshold > 0 and before >= self.threshold > self.balance:
            self.crossings += 1

    @rule(amount=AMOUNTS)
    def grant(self, amount: int) -> None:
        _ledger(self.app, self.user_id, amount)
        self._moved(amount)

    @rule(amount=AMOUNTS)
    def take_back(self, amount: int) -> None:
        _ledger(self.app, self.user_id, -amount)
        self._moved(-amount)

    @rule(amount=AMOUNTS)
    def use(self, amount: int) -> None:
        key = uuid.uuid4().hex
        response = _use(self.client, self.user_id, amount, key)
        if self.balance >= amount:
            assert response.status_code == 200, response.get_json()
            self.debits.append((key, amount))
            self._moved(-amount)
        else:
            assert response.status_code == 402  # nothing written, nothing mailed

    @rule(data=st.data())
    def reverse(self, data: st.DataObject) -> None:
        if not self.debits:
            return
        key, amount = self.debits.pop(data.draw(st.integers(0, len(self.debits) - 1)))
        response = self.client.post(
            "/api/v1/credits/usage/reverse", json={"idempotencyKey": key}, headers=bearer(TOKEN)
        )
        assert response.status_code == 200
        self._moved(amount)

    @rule(threshold=st.integers(min_value=0, max_value=600))
    def choose_threshold(self, threshold: int) -> None:
        """What the preferences page saves: a new threshold is not a crossing."""
        with self.app.app_context():
            _save_threshold(db.session.get(User, self.user_id), "credits", threshold)
            db.session.commit()
        self.threshold = threshold

    @invariant()
    def one_mail_per_downward_crossing(self) -> None:
        mails = _low_mails(self.app, self.user_id)
        assert len(mails) == self.crossings
        assert len({mail.dedupe_key for mail in mails}) == len(mails)

    @invariant()
    def the_banner_shows_exactly_while_below(self) -> None:
        with self.app.app_context():
            below = self.threshold > 0 and self.balance < self.threshold
            assert is_low(self.user_id) == (below and self.entries > 0)


def test_one_mail_per_downward_crossing_under_random_sequences(app: Flask) -> None:
    CrossingMachine.app = app
    run_state_machine_as_test(
        CrossingMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )


def test_a_usage_debit_that_crosses_writes_the_mail_with_its_entry(app, client, user_id):
    _ledger(app, user_id, 150)
    response = _use(client, user_id, 60)
    assert response.status_code == 200 and response.get_json()["balance"] == 90
    [mail] = _low_mails(app, user_id)
    with app.app_context():
        debit = db.session.scalar(select(func.max(CreditEntry.id)))
        # The dedupe key names the entry that crossed: written by the debit's transaction.
        assert mail.dedupe_key == f"credits_low:{user_id}:{debit}"
    assert "90" in mail.text_body and "100" in mail.text_body
    assert _use(client, user_id, 50).status_code == 200  # 40: still below, no new mail
    assert len(_low_mails(app, user_id)) == 1


def test_a_crossing_rolled_back_mails_nothing(app, user_id):
    _ledger(app, user_id, 150)
    with app.app_context():
        add_entry(user_id=user_id, amount=-100, grant_key="rolled-back", description="x")
        db.session.rollback()
        db.session.commit()  # a later commit of nothing does not send the forgotten crossing
    assert _low_mails(app, user_id) == []


def _preferences(client, **data: str):
    token = csrf_token(client, "/account/notifications")
    return client.post("/account/notifications", data={"csrf_token": token, **data})


def test_a_share_of_the_plan_needs_a_plan_and_says_so(app, client, auth, user_id):
    auth.login()
    refused = _preferences(client, credits_low_threshold="20", credits_low_unit="percent")
    assert refused.status_code == 400
    assert "needs a plan: you have none now" in refused.text
    for value, unit, words in (
        ("101", "percent", "Enter a percentage from 0 to 100."),
        ("-1", "credits", "Enter a whole number from 0 to 10,000,000."),
        ("ten", "credits", "Not a valid integer value."),
        ("5", "pounds", "Not a valid choice."),
    ):
        reply = _preferences(client, credits_low_threshold=value, credits_low_unit=unit)
        assert reply.status_code == 400 and words in reply.text, (value, unit)
    with app.app_context():
        user = db.session.get(User, user_id)
        assert (user.credits_low_percent, user.credits_low_threshold) == (None, None)
    assert (
        _preferences(client, credits_low_threshold="0", credits_low_unit="percent").status_code
        == 303
    )


def test_a_share_of_the_plans_monthly_credits_warns_and_shows_the_banner(app, user_id):
    member = Member(app, user_id)
    member.subscribe("starter", "monthly")  # 1,000 credits a month
    saved = _preferences(
        member.client,
        credits_low_threshold="25",
        credits_low_unit="percent",
        wants_credits_low_mail="y",
    )
    assert saved.status_code == 303
    page = member.client.get("/account/notifications")
    assert "below 250 credits" in page.text and 'checked id="credits_low_unit-1"' in page.text
    assert BANNER not in member.client.get("/account").text
    spent = _use(member.client, user_id, 751)  # 1,000 → 249: below 25 % of 1,000
    assert spent.status_code == 200
    [mail] = _low_mails(app, user_id)
    assert "249" in mail.text_body and "250" in mail.text_body
    for path in ("/account", "/pricing", "/account/notifications"):
        html = member.client.get(path).text
        assert BANNER in html and 'href="/pricing"' in html, path
    _ledger(app, user_id, 1)  # 250: back at the threshold, re-armed, no banner
    assert BANNER not in member.client.get("/pricing").text
    assert _use(member.client, user_id, 1).status_code == 200  # crossing again
    assert len(_low_mails(app, user_id)) == 2


def test_a_new_account_without_credits_sees_no_banner(app, client, auth, user_id):
    auth.login()
    assert BANNER not in client.get("/account").text
    _ledger(app, user_id, 50)  # has had credits, and stands below the default 100
    assert BANNER in client.get("/account").text
    _ledger(app, user_id, 50)  # 100: at the threshold
    assert BANNER not in client.get("/account").text
