"""Trial credits are granted at most once per person, whatever happens (webapp/billing/trials.py).

A hypothesis state machine drives the site and the real SDK against the sandbox, on the test
database (SQLite, or PostgreSQL in CI's second run): checkouts with a card-less trial, a trial
with a card, or (once a trial was had) paying at once; cards added in the portal; the test clock
(trial reminders, conversions, card-less trials ending); cancellations now (the Dashboard) or at
the period end (the portal); events delivered again, newest first.

After every step, against Stripe's own state read through the SDK:

- Stripe never holds more than one trial subscription for the customer (no second trial);
- the ledger holds exactly one trial allowance once a trial began, of that trial's plan, and
  none before;
- a trial's $0 invoice granted nothing; every other paid invoice granted its plan's monthly
  credits for its first month, exactly, and no month more than that;
- replaying events changes nothing.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.billing.member import Member
from tests.billing_helpers import post_event, sandbox_events
from tests.conftest import _empty_all_tables, create_user, make_app, sql
from webapp.billing.trials import trial_days_for
from webapp.catalog import get_catalog
from webapp.extensions import db
from webapp.stripe_gateway import get_gateway

TRIALS_ON = {"CHECKOUT_FREE_TRIALS": "true", "CHECKOUT_TRIALS_WITHOUT_CARD": "true"}
PLANS = [
    (plan, cycle)
    for plan in ("starter", "professional", "business", "agency")
    for cycle in ("monthly", "yearly")
]


class Trials(RuleBasedStateMachine):
    def __init__(self, database_url: str) -> None:
        super().__init__()
        self.database_url = database_url
        self.app = make_app(database_url, CHECKOUT_OVERRIDES=TRIALS_ON)
        self.ctx = self.app.app_context()
        self.ctx.push()
        self.user_id = create_user(self.app)
        self.member = Member(self.app, self.user_id)

    def teardown(self) -> None:
        db.session.remove()
        self.ctx.pop()
        with self.app.app_context():
            db.engine.dispose()
        _empty_all_tables(self.database_url)

    def has_live(self) -> bool:
        return self.member.live() is not None

    # --- rules -----------------------------------------------------------------------

    @precondition(lambda self: not self.has_live())
    @rule(plan=st.sampled_from(PLANS), card_less=st.booleans())
    def subscribe(self, plan, card_less):
        offered = trial_days_for(self.user_id, get_catalog().plan(plan[0]))
        if offered:
            self.member.start_trial(*plan, card=None if card_less else "pays")
        else:
            self.member.subscribe(*plan)

    @precondition(lambda self: self.member.customer_id() is not None)
    @rule()
    def add_card(self):
        self.member.add_card()

    @precondition(lambda self: self.member.customer_id() is not None)
    @rule(days=st.sampled_from([1, 3, 11, 14, 15, 31]))
    def time_passes(self, days):
        self.member.advance(days)

    @precondition(lambda self: self.has_live())
    @rule()
    def cancel_now(self):
        """Support cancels at once from the Dashboard (the API)."""
        get_gateway().client.v1.subscriptions.cancel(self.member.live().id)

    @precondition(lambda self: self.has_live())
    @rule()
    def cancel_at_period_end(self):
        self.member.portal("cancel", reason="other")

    @precondition(lambda self: self.member.customer_id() is not None)
    @rule(count=st.integers(1, 15))
    def events_come_again(self, count):
        before = self.ledger()
        events = [
            e for e in sandbox_events(self.app) if not e["type"].startswith(("product.", "price."))
        ]
        for event in reversed(events[-count:]):
            assert post_event(self.member.client, event).status_code == 200
        assert self.ledger() == before, "a replayed event changed the ledger"

    # --- invariants ------------------------------------------------------------------

    def ledger(self) -> list[tuple[Any, ...]]:
        return sql(
            self.app,
            "select grant_key, invoice_id, period_key, amount from credit_entries "
            "where user_id = :id order by grant_key",
            id=self.user_id,
        )

    def stripe_view(self) -> tuple[list[Any], list[Any]]:
        customer = self.member.customer_id()
        if customer is None:
            return [], []
        client = get_gateway().client.v1
        subs = client.subscriptions.list(params={"customer": customer, "status": "all"}).data
        invoices = client.invoices.list(params={"customer": customer, "limit": 100}).data
        return list(subs), list(invoices)

    @invariant()
    def trial_credits_once(self):
        subs, _invoices = self.stripe_view()
        trials = sorted((s for s in subs if s.trial_start), key=lambda s: s.created)
        assert len(trials) <= 1, "a second trial was started"
        ledger = self.ledger()
        trial_entries = [row for row in ledger if row[0].startswith("trial:")]
        if not trials:
            assert trial_entries == []
            return
        plan_id = trials[0]["items"].data[0].price.metadata["plan_id"]
        expected = get_catalog().plan(plan_id).trial_credits
        assert [(row[0], row[3]) for row in trial_entries] == [(f"trial:{self.user_id}", expected)]

    @invariant()
    def invoices_grant_what_they_bought(self):
        _subs, invoices = self.stripe_view()
        ledger = self.ledger()
        for invoice in invoices:
            entries = [row for row in ledger if row[1] == invoice.id]
            if invoice.total == 0:
                assert entries == [], f"the $0 invoice {invoice.id} granted credits"
                continue
            if invoice.status != "paid":
                assert sum(row[3] for row in entries) == 0
                continue
            [line] = invoice.lines.data
            price = get_gateway().client.v1.prices.retrieve(line.pricing.price_details.price)
            monthly = get_catalog().plan(price.metadata["plan_id"]).monthly_credits
            by_month: dict[str, int] = {}
            for row in entries:
                by_month[row[2]] = by_month.get(row[2], 0) + row[3]
            assert by_month, f"the paid invoice {invoice.id} granted nothing"
            assert all(amount == monthly for amount in by_month.values()), by_month


def test_trial_credits_are_granted_at_most_once_per_person(_schema, database_url):
    """TRIAL_EXAMPLES=100 pytest tests/billing/test_trial_properties.py tries harder."""
    run_state_machine_as_test(
        lambda: Trials(database_url),
        settings=settings(
            max_examples=int(os.environ.get("TRIAL_EXAMPLES", "10")),
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
