"""The credits ledger and access rules on stored invoices and subscriptions (no Stripe involved)."""

from datetime import UTC, datetime, timedelta
from fractions import Fraction
from math import floor

import pytest

from tests.conftest import sql
from webapp import billing
from webapp.billing.credits import add_entry, settle_subscription
from webapp.billing.invoices import store_invoice
from webapp.billing.stripe_facts import InvoiceFacts, LineFacts, PriceFacts
from webapp.extensions import db
from webapp.models import CreditEntry, Subscription

JAN = datetime(2026, 1, 31, 12, tzinfo=UTC)
STARTER_M = PriceFacts("price_sm", "starter", "monthly", 499)
STARTER_Y = PriceFacts("price_sy", "starter", "yearly", 4990)
BUSINESS_M = PriceFacts("price_bm", "business", "monthly", 3999)


def add_subscription(user_id: int, **fields) -> Subscription:
    values = {
        "stripe_subscription_id": "sub_test",
        "stripe_customer_id": "cus_test",
        "stripe_price_id": "price_test",
        "plan_id": "professional",
        "cycle": "yearly",
        "status": "active",
        "current_period_start": JAN,
        "current_period_end": datetime(2027, 1, 31, 12, tzinfo=UTC),
        **fields,
    }
    subscription = Subscription(user_id=user_id, **values)
    db.session.add(subscription)
    db.session.commit()
    return subscription


def invoice(id, *lines, status="paid", total=499, refunded=0, disputed=0, reason="x"):
    return InvoiceFacts(
        id=id,
        customer_id="cus_test",
        subscription_id="sub_test",
        status=status,
        billing_reason=reason,
        currency="usd",
        total=total,
        amount_paid=total if status == "paid" else 0,
        amount_refunded=refunded,
        amount_disputed=disputed,
        number=f"N-{id}",
        hosted_invoice_url=None,
        invoice_pdf=None,
        created=lines[0].period_start,
        lines=tuple(lines),
        fetched_at=datetime.now(UTC),
    )


def line(id, price, start, end, amount=499, proration=False, quantity=1):
    return LineFacts(id, "sub_test", price, amount, proration, start, end, quantity)


def settle(user_id, *invoices, now=None):
    for facts in invoices:
        store_invoice(facts, user_id)
    written = settle_subscription("sub_test", user_id, now)
    db.session.commit()
    return written


def balance(user_id):
    return billing.credit_summary(user_id).balance


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


def test_an_entry_is_written_once_per_key(app, user_id):
    with app.app_context():
        entry = {"user_id": user_id, "amount": 3000, "grant_key": "k", "description": "d"}
        assert add_entry(**entry)
        assert not add_entry(**entry)
        db.session.commit()
        summary = billing.credit_summary(user_id)
        assert (summary.balance, summary.total_purchased, summary.total_used) == (3000, 3000, 0)


def test_balance_is_derived_from_grants_and_usage(app, user_id):
    with app.app_context():
        entries = [
            (1000, "purchase", "grant"),
            (-250, "usage", "usage"),
            (-50, "usage", "usage"),
            (100, "purchase", "adjustment"),
        ]
        for amount, entry_type, kind in entries:
            db.session.add(
                CreditEntry(
                    user_id=user_id, amount=amount, type=entry_type, kind=kind, description=kind
                )
            )
        db.session.commit()
        summary = billing.credit_summary(user_id)
        assert (summary.balance, summary.total_purchased, summary.total_used) == (800, 1100, 300)
        assert len(summary.recent) == 4


def test_a_paid_invoice_grants_its_month_once_and_an_unpaid_one_nothing(app, user_id):
    with app.app_context():
        add_subscription(user_id, cycle="monthly", current_period_end=JAN + timedelta(days=28))
        feb = datetime(2026, 2, 28, 12, tzinfo=UTC)
        first = invoice("in_1", line("il_1", STARTER_M, JAN, feb))
        assert settle(user_id, first) == 1
        assert settle(user_id, first) == 0  # a replay
        assert balance(user_id) == 1000
        unpaid = invoice(
            "in_2", line("il_2", STARTER_M, feb, feb + timedelta(days=31)), status="open"
        )
        assert settle(user_id, unpaid) == 0 and balance(user_id) == 1000
        assert (
            settle(user_id, invoice("in_2", line("il_2", STARTER_M, feb, feb + timedelta(days=31))))
            == 1
        )
        assert balance(user_id) == 2000


def test_yearly_months_are_granted_as_they_begin_and_a_missed_run_catches_up(app, user_id):
    with app.app_context():
        add_subscription(user_id, plan_id="starter")
        year = invoice("in_y", line("il_y", STARTER_Y, JAN, JAN.replace(year=2027)), total=4990)
        settle(user_id, year, now=JAN)
        assert balance(user_id) == 1000
        assert billing.grant_due_credits(datetime(2026, 2, 27, tzinfo=UTC)).written == 0
        assert billing.grant_due_credits(datetime(2026, 2, 28, 13, tzinfo=UTC)).written == 1
        # Nobody ran the scheduler in March, April or May: June's run grants all three.
        assert billing.grant_due_credits(datetime(2026, 6, 1, tzinfo=UTC)).written == 3
        assert billing.grant_due_credits(datetime(2026, 6, 1, tzinfo=UTC)).written == 0
        assert balance(user_id) == 5000
    rows = sql(app, "select period_key from credit_entries order by id")
    assert [key[0][9:19] for key in rows] == [
        "2026-01-31",
        "2026-02-28",
        "2026-03-31",
        "2026-04-30",
        "2026-05-31",
    ]


def test_the_command_grants_what_is_due(app, user_id, runner):
    with app.app_context():
        start = datetime.now(UTC) - timedelta(days=40)
        add_subscription(user_id, current_period_start=start)
        settle(
            user_id,
            invoice("in_y", line("il_y", STARTER_Y, start, start + timedelta(days=365))),
            now=start,
        )
    result = runner.invoke(args=["credits", "grant-due"])
    assert result.exit_code == 0
    assert "wrote 1 credit entr" in result.output
    again = runner.invoke(args=["credits", "grant-due"])
    assert "wrote 0 credit entr" in again.output


@pytest.mark.parametrize(
    ("refunded", "disputed", "expected"),
    [(499, 0, 0), (250, 0, 498), (0, 499, 0), (100, 100, 599)],
)
def test_money_going_back_takes_back_what_it_bought(app, user_id, refunded, disputed, expected):
    """Pro rata of the invoice's total, rounded down: never more than stayed paid."""
    with app.app_context():
        add_subscription(user_id, cycle="monthly")
        feb = datetime(2026, 2, 28, 12, tzinfo=UTC)
        paid = invoice("in_1", line("il_1", STARTER_M, JAN, feb))
        settle(user_id, paid)
        back = invoice(
            "in_1", line("il_1", STARTER_M, JAN, feb), refunded=refunded, disputed=disputed
        )
        settle(user_id, back)
        assert balance(user_id) == expected
        # A won dispute, or a refund that failed: read again, the credits come back.
        settle(user_id, invoice("in_1", line("il_1", STARTER_M, JAN, feb)))
        assert balance(user_id) == 1000
    kinds = sql(app, "select kind, amount > 0 from credit_entries order by id")
    assert kinds[0] == ("grant", True)


def test_a_voided_invoice_buys_nothing(app, user_id):
    with app.app_context():
        add_subscription(user_id, cycle="monthly")
        feb = datetime(2026, 2, 28, 12, tzinfo=UTC)
        assert (
            settle(user_id, invoice("in_1", line("il_1", STARTER_M, JAN, feb), status="void")) == 0
        )
        assert balance(user_id) == 0


def test_a_downgrade_applied_mid_period_takes_back_the_upgrade_to_what_was_paid(app, user_id):
    """Starter → Business → Starter in one month, both switches prorated (as from the Dashboard):
    Starter's allowance stays, plus Business for exactly the days it was paid for."""
    with app.app_context():
        start, end = datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC)
        add_subscription(
            user_id, cycle="monthly", current_period_start=start, current_period_end=end
        )
        up_at, down_at = datetime(2026, 4, 7, tzinfo=UTC), datetime(2026, 4, 13, tzinfo=UTC)
        base = invoice("in_base", line("il_base", STARTER_M, start, end))
        up = invoice(
            "in_up",
            line("il_u1", STARTER_M, up_at, end, -399, True),
            line("il_u2", BUSINESS_M, up_at, end, 3199, True),
            total=2800,
        )
        down = invoice(
            "in_down",
            line("il_d1", BUSINESS_M, down_at, end, -2399, True),
            line("il_d2", STARTER_M, down_at, end, 299, True),
            total=-2100,
        )
        settle(user_id, base, up, down)
        # Business for 6 of April's 30 days: 9,000 x 6/30 = 1,800 on top of Starter's 1,000.
        assert balance(user_id) == 1000 + 9000 * 24 // 30 - 9000 * 18 // 30
        assert balance(user_id) == 2800


AGENCY_M = PriceFacts("price_am", "agency", "monthly", 9999)
STARTER_Y_PRICE = PriceFacts("price_sy", "starter", "yearly", 4990)
AGENCY_Y = PriceFacts("price_ay", "agency", "yearly", 99990)


def test_a_refund_of_an_invoice_that_also_credited_unused_time_takes_back_its_share(app, user_id):
    """The credited unused time stays credited; the refunded cash takes back what it bought."""
    with app.app_context():
        april, may, june = (datetime(2026, m, 1, tzinfo=UTC) for m in (4, 5, 6))
        half = datetime(2026, 4, 16, tzinfo=UTC)
        add_subscription(
            user_id, cycle="monthly", current_period_start=may, current_period_end=june
        )
        settle(
            user_id,
            invoice("in_a", line("il_a", AGENCY_M, april, may, 9999), total=9999),
            now=april,
        )
        renewal = (
            line("il_1", AGENCY_M, half, may, -5000, True),  # unused Agency, credited
            line("il_2", BUSINESS_M, half, may, 2000, True),  # Business, the rest of April
            line("il_3", BUSINESS_M, may, june, 3999),  # May
        )
        settle(user_id, invoice("in_r", *renewal, total=999), now=may)
        # April: Agency's half gone back (-15,000), Business's half bought (+5,000); May: 10,000.
        assert balance(user_id) == 30_000 - 15_000 + 5000 + 10_000
        settle(user_id, invoice("in_r", *renewal, total=999, refunded=999), now=may)
        # $9.99 of the $59.99 the renewal bought went back: that share of what it bought with it;
        # the unused Agency half stays credited.
        kept = Fraction(5999 - 999, 5999)
        april_part = floor(kept * 5000 - 15_000)
        assert balance(user_id) == 30_000 + april_part + floor(kept * 10_000)


def test_a_switch_nobody_paid_for_leaves_the_paid_year_whole(app, user_id):
    """Stripe applies an upgrade whose card fails (allow_incomplete): the paid year goes on."""
    with app.app_context():
        y0, y1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
        switch_at, switch_end = datetime(2026, 3, 15, tzinfo=UTC), datetime(2027, 3, 15, tzinfo=UTC)
        add_subscription(
            user_id,
            plan_id="agency",
            status="past_due",
            current_period_start=switch_at,
            current_period_end=switch_end,
        )
        settle(
            user_id,
            invoice("in_y", line("il_y", STARTER_Y_PRICE, y0, y1, 4990), total=4990),
            now=y0,
        )
        unpaid = invoice(
            "in_sw",
            line("il_c", STARTER_Y_PRICE, switch_at, y1, -3900, True),
            line("il_a", AGENCY_Y, switch_at, switch_end, 99990),
            total=96090,
            status="uncollectible",
        )
        settle(user_id, unpaid, now=switch_at)
        billing.grant_due_credits(datetime(2026, 12, 15, tzinfo=UTC))
        assert balance(user_id) == 12 * 1000


def test_an_older_read_never_overwrites_a_newer_one(app, user_id):
    """Two workers read the same invoice around a refund; the one that read first commits last."""
    with app.app_context():
        add_subscription(user_id, cycle="monthly")
        feb = datetime(2026, 2, 28, 12, tzinfo=UTC)
        before_refund = invoice("in_1", line("il_1", STARTER_M, JAN, feb))
        after_refund = invoice("in_1", line("il_1", STARTER_M, JAN, feb), refunded=499)
        settle(user_id, after_refund)
        settle(user_id, before_refund)
        assert balance(user_id) == 0
        [(refunded,)] = sql(app, "select amount_refunded from invoices")
        assert refunded == 499


def test_a_quantity_of_two_buys_twice_the_credits(app, user_id):
    with app.app_context():
        add_subscription(user_id, cycle="monthly")
        feb = datetime(2026, 2, 28, 12, tzinfo=UTC)
        settle(
            user_id, invoice("in_2", line("il_2", STARTER_M, JAN, feb, 998, quantity=2), total=998)
        )
        assert balance(user_id) == 2000
