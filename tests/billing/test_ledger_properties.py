"""The credits ledger under random sequences of grants, usage, reversals and refunds.

Grants (a month's plan credits) and take-backs (a refund, a dispute, and their reversal) are
written by `add_entry` with the type `settle_subscription` gives them; usage and reversals go
through the service endpoints, with idempotency keys drawn from a small pool so that keys are
reused, with the same request and with another. After every step:

- the balance is the sum of the entries, and `totalPurchased - totalUsed - totalTakenBack`;
- each total is what the model says (net usage: debits less reversals);
- usage never took the balance below zero (each debit's `balance_after` >= 0), and a debit was
  refused with 402 exactly when the balance did not cover it;
- each idempotency key debited at most once and was reversed at most once;
- the history pages the same entries the ledger holds, newest first, by type.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from flask import Flask
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from tests.api.conftest import bearer
from tests.conftest import create_user
from webapp import billing
from webapp.billing.credits import add_entry
from webapp.billing.usage import credit_history
from webapp.extensions import db
from webapp.models import CreditEntry

TOKEN = "service-token-for-the-property-test-0123456"
KEYS = st.sampled_from([f"gen-{n}" for n in range(6)])
AMOUNTS = st.integers(min_value=1, max_value=400)


@pytest.fixture
def config_overrides() -> dict[str, str]:
    return {"CREDITS_SERVICE_TOKEN": TOKEN}


@dataclass
class Debit:
    amount: int
    description: str
    reversed: bool = False


class LedgerMachine(RuleBasedStateMachine):
    app: Flask

    def __init__(self) -> None:
        super().__init__()
        self.client = self.app.test_client()
        self.user_id = create_user(self.app, email=f"{uuid.uuid4().hex}@example.com")
        self.purchased = self.used = self.taken_back = 0
        self.debits: dict[str, Debit] = {}
        self.writes = 0

    @property
    def balance(self) -> int:
        return self.purchased - self.used - self.taken_back

    def _ledger(self, amount: int, entry_type: str) -> None:
        self.writes += 1
        with self.app.app_context():
            assert add_entry(
                user_id=self.user_id,
                amount=amount,
                grant_key=f"test:{self.user_id}:{self.writes}",
                description=f"{entry_type} {amount}",
                entry_type=entry_type,
            )
            db.session.commit()

    @rule(amount=AMOUNTS)
    def grant(self, amount: int) -> None:
        self._ledger(amount, "purchase")
        self.purchased += amount

    @rule(amount=AMOUNTS)
    def take_back(self, amount: int) -> None:
        """A refund or a lost dispute: may take the balance below zero."""
        self._ledger(-amount, "refund")
        self.taken_back += amount

    @rule(amount=AMOUNTS)
    def give_back(self, amount: int) -> None:
        """A won dispute or a failed refund restores what was taken back."""
        if self.taken_back >= amount:
            self._ledger(amount, "refund")
            self.taken_back -= amount

    @rule(key=KEYS, amount=AMOUNTS, same_words=st.booleans())
    def use(self, key: str, amount: int, same_words: bool) -> None:
        key = f"{self.user_id}-{key}"  # each example its own keys: the database outlives it
        known = self.debits.get(key)
        if known is not None and same_words:
            amount = known.amount  # a retry of the same request
        description = known.description if known and same_words else f"job {key} {amount}"
        response = self.client.post(
            "/api/v1/credits/usage",
            json={
                "userId": self.user_id,
                "amount": amount,
                "description": description,
                "idempotencyKey": key,
            },
            headers=bearer(TOKEN),
        )
        answer = response.get_json()
        if known is not None:
            same = (known.amount, known.description) == (amount, description)
            assert response.status_code == (200 if same else 409), answer
            if same:
                assert response.headers["Idempotent-Replayed"] == "true"
            else:
                assert answer["error"]["code"] == "idempotency_key_reused"
        elif self.balance >= amount:
            assert response.status_code == 200, answer
            assert answer["balance"] == self.balance - amount
            self.debits[key] = Debit(amount, description)
            self.used += amount
        else:
            assert response.status_code == 402, answer
            assert (answer["balance"], answer["needed"]) == (self.balance, amount)

    @rule(key=KEYS)
    def reverse(self, key: str) -> None:
        key = f"{self.user_id}-{key}"
        response = self.client.post(
            "/api/v1/credits/usage/reverse", json={"idempotencyKey": key}, headers=bearer(TOKEN)
        )
        known = self.debits.get(key)
        if known is None:
            assert response.status_code == 404
            return
        assert response.status_code == 200
        assert response.headers["Idempotent-Replayed"] == ("true" if known.reversed else "false")
        if not known.reversed:
            known.reversed = True
            self.used -= known.amount
            assert response.get_json()["balance"] == self.balance

    @invariant()
    def the_ledger_adds_up(self) -> None:
        with self.app.app_context():
            summary = billing.credit_summary(self.user_id)
            rows = db.session.scalars(
                db.select(CreditEntry).where(CreditEntry.user_id == self.user_id)
            ).all()
            assert summary.balance == sum(row.amount for row in rows) == self.balance
            assert (summary.total_purchased, summary.total_used, summary.total_taken_back) == (
                self.purchased,
                self.used,
                self.taken_back,
            )
            usage_rows = [row for row in rows if row.kind == "usage"]
            assert all(
                row.balance_after is not None and row.balance_after >= 0 for row in usage_rows
            )
            keys = [row.grant_key for row in rows if row.type == "usage"]
            assert len(keys) == len(set(keys))  # each key: one debit, one reversal at most
            assert len(usage_rows) == len(self.debits)
            for entry_type in ("purchase", "usage", "refund", None):
                page = credit_history(self.user_id, limit=100, entry_type=entry_type)
                expected = sorted(
                    (row for row in rows if entry_type in (None, row.type)),
                    key=lambda row: (row.created_at, row.id),
                    reverse=True,
                )
                assert [row.id for row in page.entries] == [row.id for row in expected][:100]
                assert page.total == len(expected)


def test_the_ledger_under_random_sequences(app: Flask) -> None:
    LedgerMachine.app = app
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
