"""Free trials end to end through our billing code, the real SDK and the sandbox (README, "Free
trials"; invariants in webapp/billing/trials.py): the allowance once per person ever, no plan
credits for the trial's $0 invoice, the first period's credits once on conversion, nothing more
when a card-less trial ends, and no second trial offered."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from tests.billing.member import Member
from tests.billing_helpers import post_event, sandbox_events
from tests.conftest import create_user, sql
from webapp import billing
from webapp.billing.trials import had_trial, trial_days_for
from webapp.catalog import get_catalog
from webapp.extensions import db
from webapp.models import Subscription

TRIALS_ON = {"CHECKOUT_FREE_TRIALS": "true", "CHECKOUT_TRIALS_WITHOUT_CARD": "true"}


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"CHECKOUT_OVERRIDES": TRIALS_ON}


@pytest.fixture
def member(app: Flask):
    with app.app_context():
        yield Member(app, create_user(app))


def row(member: Member) -> Subscription:
    db.session.expire_all()
    rows = db.session.scalars(
        db.select(Subscription).where(Subscription.user_id == member.user_id)
    ).all()
    return sorted(rows, key=lambda r: r.id)[-1]


def ledger(member: Member) -> list[tuple[str, int]]:
    return [
        (key, amount)
        for key, amount in sql(
            member.app,
            "select grant_key, amount from credit_entries where user_id = :id order by id",
            id=member.user_id,
        )
    ]


def replay_all(member: Member) -> None:
    """Every event again, newest first (duplicated and out of order)."""
    events = [e for e in sandbox_events(member.app) if e["type"].startswith(("customer", "inv"))]
    for event in reversed(events):
        assert post_event(member.client, event).status_code == 200


def test_a_card_less_trial_grants_the_trial_allowance_once(app, member):
    html = member.start_trial("professional", "monthly")
    assert "free trial has started" in html and "300 trial credits" in html
    subscription = row(member)
    assert subscription.status == "trialing"
    assert subscription.trial_end - subscription.trial_start == subscription.trial_end - (
        subscription.current_period_start
    )
    assert (subscription.trial_end - subscription.trial_start).days == 14
    assert member.balance() == 300
    [(key, amount)] = ledger(member)
    assert key == f"trial:{member.user_id}" and amount == 300
    # The $0 invoice is stored (billing history) and bought no plan credits.
    invoices = sql(app, "select total, billing_reason from invoices")
    assert invoices == [(0, "subscription_create")]
    assert sql(app, "select credits_per_month from invoice_lines") == [(0,)]
    replay_all(member)
    assert member.balance() == 300 and len(ledger(member)) == 1
    assert had_trial(member.user_id)


def test_a_card_added_converts_the_trial_and_the_first_period_grants_once(app, member):
    member.start_trial("starter", "monthly")
    member.add_card()
    member.advance(14.01)
    subscription = row(member)
    assert subscription.status == "active" and subscription.trial_end is not None
    assert member.balance() == 100 + 1000
    paid = sql(app, "select total, billing_reason, status from invoices order by created")
    assert paid == [(0, "subscription_create", "paid"), (499, "subscription_cycle", "paid")]
    replay_all(member)
    assert member.balance() == 1100
    member.advance(31)
    assert member.balance() == 100 + 2 * 1000


def test_a_trial_that_ends_without_a_card_is_cancelled_and_grants_nothing_more(app, member):
    member.start_trial("business", "yearly")
    assert member.balance() == 1000
    member.advance(15)
    subscription = row(member)
    assert subscription.status == "canceled"
    assert member.balance() == 1000
    replay_all(member)
    assert member.balance() == 1000
    page = member.client.get("/account").get_data(as_text=True)
    assert "Trial ended" in page


def test_no_second_trial_after_cancel_and_resubscribe(app, member):
    member.start_trial("starter", "monthly")
    member.advance(15)  # ends, no card
    plan = get_catalog().plan("starter")
    assert trial_days_for(member.user_id, plan) == 0
    assert "free trial" not in member.client.get("/pricing").get_data(as_text=True)
    confirm = member.client.get("/signup?plan=starter&cycle=monthly").get_data(as_text=True)
    assert "free trial" not in confirm
    member.subscribe("starter", "monthly")  # pays at once: no trial this time
    subscription = row(member)
    assert subscription.status == "active" and subscription.trial_start is None
    assert member.balance() == 100 + 1000
    assert [key for key, _ in ledger(member)].count(f"trial:{member.user_id}") == 1


def test_a_trial_with_a_card_from_checkout_converts(app, member):
    member.start_trial("starter", "monthly", card="pays")
    assert row(member).status == "trialing" and member.balance() == 100
    member.advance(14.01)
    assert row(member).status == "active" and member.balance() == 1100


def test_visitors_and_new_members_are_offered_the_trial(app, member):
    anonymous = app.test_client().get("/pricing").get_data(as_text=True)
    assert anonymous.count("14-day free trial") == 4
    page = member.client.get("/pricing").get_data(as_text=True)
    assert page.count("14-day free trial") == 4
    # A link naming a plan, followed while logged in: the "Continue to checkout" page.
    confirm = member.client.get("/signup?plan=starter&cycle=monthly")
    assert confirm.status_code == 200
    assert "14-day free trial" in confirm.get_data(as_text=True)


@pytest.mark.parametrize("config_overrides", [{}])
def test_trials_off_means_no_trial(app, member):
    assert trial_days_for(member.user_id, get_catalog().plan("starter")) == 0
    assert "free trial" not in member.client.get("/pricing").get_data(as_text=True)
    member.subscribe("starter", "monthly")
    assert row(member).status == "active" and member.balance() == 1000
    assert billing.credit_summary(member.user_id).total_purchased == 1000
