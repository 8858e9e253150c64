"""The credits ledger and access rules, on stored subscription rows (no Stripe involved)."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import sql
from webapp import billing
from webapp.extensions import db
from webapp.models import CreditEntry, Subscription


def add_subscription(user_id: int, **fields) -> Subscription:
    values = {
        "stripe_subscription_id": "sub_test",
        "stripe_customer_id": "cus_test",
        "stripe_price_id": "price_test",
        "plan_id": "professional",
        "cycle": "yearly",
        "status": "active",
        "current_period_start": datetime(2026, 1, 31, 12, tzinfo=UTC),
        "current_period_end": datetime(2027, 1, 31, 12, tzinfo=UTC),
        **fields,
    }
    subscription = Subscription(user_id=user_id, **values)
    db.session.add(subscription)
    db.session.commit()
    return subscription


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (datetime(2026, 1, 31, tzinfo=UTC), 1, datetime(2026, 2, 28, tzinfo=UTC)),
        (datetime(2028, 1, 31, tzinfo=UTC), 1, datetime(2028, 2, 29, tzinfo=UTC)),
        (datetime(2026, 1, 15, tzinfo=UTC), 12, datetime(2027, 1, 15, tzinfo=UTC)),
        (datetime(2026, 11, 30, tzinfo=UTC), 3, datetime(2027, 2, 28, tzinfo=UTC)),
    ],
)
def test_add_months_clamps_the_day(start, months, expected):
    assert billing.add_months(start, months) == expected


def test_access_rules(app, user_id):
    with app.app_context():
        now = datetime.now(UTC)
        sub = add_subscription(user_id)
        for status, expected in [
            ("active", True),
            ("trialing", True),
            ("unpaid", False),
            ("canceled", False),
            ("incomplete_expired", False),
        ]:
            sub.status = status
            assert billing.has_access(sub, now) is expected, status
        sub.status = "past_due"
        sub.past_due_since = now - timedelta(days=6)
        assert billing.has_access(sub, now)
        sub.past_due_since = now - timedelta(days=8)
        assert not billing.has_access(sub, now)
        assert not billing.has_access(None, now)


def test_grant_is_once_per_key(app, user_id):
    with app.app_context():
        grant = {
            "user_id": user_id,
            "amount": 3000,
            "grant_key": "invoice:in_1",
            "period_key": "sub_test:2026-01-31",
            "description": "Professional plan: monthly credits",
            "subscription_id": "sub_test",
        }
        assert billing.grant_credits(**grant)
        db.session.commit()
        assert not billing.grant_credits(**grant)
        db.session.commit()
        summary = billing.credit_summary(user_id)
        assert (summary.balance, summary.total_granted, summary.total_used) == (3000, 3000, 0)


def test_balance_is_derived_from_grants_and_usage(app, user_id):
    with app.app_context():
        for amount, kind in [(1000, "grant"), (-250, "usage"), (-50, "usage"), (100, "adjustment")]:
            db.session.add(CreditEntry(user_id=user_id, amount=amount, kind=kind, description=kind))
        db.session.commit()
        summary = billing.credit_summary(user_id)
        assert (summary.balance, summary.total_granted, summary.total_used) == (800, 1100, 300)
        assert len(summary.recent) == 4


def test_grant_due_gives_yearly_plans_each_month_once(app, user_id, runner):
    with app.app_context():
        add_subscription(user_id)
        # Month 0 is paid by the invoice; grant-due never touches it.
        assert billing.grant_due_credits(datetime(2026, 2, 27, tzinfo=UTC)) == 0
        assert billing.grant_due_credits(datetime(2026, 2, 28, 13, tzinfo=UTC)) == 1
        assert billing.grant_due_credits(datetime(2026, 3, 1, tzinfo=UTC)) == 0
        assert billing.grant_due_credits(datetime(2026, 4, 1, tzinfo=UTC)) == 1
    rows = sql(app, "select amount, grant_key from credit_entries order by id")
    assert rows == [
        (3000, "month:sub_test:2026-02-28"),
        (3000, "month:sub_test:2026-03-31"),
    ]


def test_grant_due_ignores_monthly_and_inactive_plans(app, user_id):
    with app.app_context():
        add_subscription(user_id, cycle="monthly")
        add_subscription(user_id, stripe_subscription_id="sub_2", status="canceled")
        assert billing.grant_due_credits(datetime(2026, 6, 1, tzinfo=UTC)) == 0


def test_credits_grant_due_command(app, user_id, runner):
    with app.app_context():
        add_subscription(user_id, current_period_start=datetime.now(UTC) - timedelta(days=40))
    result = runner.invoke(args=["credits", "grant-due"])
    assert result.exit_code == 0
    assert "granted 1 monthly credit grant(s)" in result.output
    again = runner.invoke(args=["credits", "grant-due"])
    assert "granted 0" in again.output


def test_top_up_after_upgrade_grants_the_difference_once(app, user_id):
    with app.app_context():
        now = datetime.now(UTC)
        sub = add_subscription(
            user_id, cycle="monthly", current_period_start=now - timedelta(days=3)
        )
        period_key = f"sub_test:{sub.current_period_start.date().isoformat()}"
        billing.grant_credits(
            user_id=user_id,
            amount=3000,
            grant_key="invoice:in_1",
            period_key=period_key,
            description="first",
            subscription_id="sub_test",
        )
        sub.plan_id = "business"
        billing.top_up_after_upgrade(sub)
        billing.top_up_after_upgrade(sub)
        db.session.commit()
        assert billing.credit_summary(user_id).balance == 10_000
        sub.plan_id = "starter"  # a downgrade takes nothing back
        billing.top_up_after_upgrade(sub)
        db.session.commit()
        assert billing.credit_summary(user_id).balance == 10_000


def test_account_shows_ledger_amounts_signed_with_separators(app, client, auth, user_id):
    with app.app_context():
        db.session.add(CreditEntry(user_id=user_id, amount=3000, kind="grant", description="g"))
        db.session.add(CreditEntry(user_id=user_id, amount=-1250, kind="usage", description="u"))
        db.session.commit()
    auth.login()
    html = client.get("/account").get_data(as_text=True)
    assert ">+3,000<" in html and ">-1,250<" in html
