"""The arithmetic of "credits follow the money", on plain numbers (billing/credit_months.py)."""

from datetime import UTC, datetime
from fractions import Fraction

import pytest

from webapp.billing.credit_months import BilledLine, add_months, month_credits, periods

STARTER, BUSINESS = 1000, 10_000


def ts(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())


def line(start, end, credits, amount=100, proration=False, cycle="monthly", id="il"):
    return BilledLine(id, credits, amount, proration, start, end, cycle)


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (datetime(2026, 1, 31, tzinfo=UTC), 1, datetime(2026, 2, 28, tzinfo=UTC)),
        (datetime(2026, 1, 31, tzinfo=UTC), 2, datetime(2026, 3, 31, tzinfo=UTC)),
        (datetime(2028, 1, 31, tzinfo=UTC), 1, datetime(2028, 2, 29, tzinfo=UTC)),
        (datetime(2026, 1, 15, tzinfo=UTC), 12, datetime(2027, 1, 15, tzinfo=UTC)),
        (datetime(2026, 11, 30, tzinfo=UTC), 3, datetime(2027, 2, 28, tzinfo=UTC)),
    ],
)
def test_add_months_counts_from_the_anchor_and_clamps_the_day(start, months, expected):
    assert add_months(start, months) == expected


def test_a_monthly_invoice_buys_its_month():
    base = line(ts(2026, 1, 10), ts(2026, 2, 10), STARTER)
    known = periods({(base.start, base.end, base.cycle, 0)}, None)
    assert month_credits([base], known) == {ts(2026, 1, 10): STARTER}


def test_a_yearly_invoice_buys_twelve_months_from_a_31st():
    base = line(ts(2026, 1, 31), ts(2027, 1, 31), STARTER, cycle="yearly")
    known = periods({(base.start, base.end, base.cycle, 0)}, None)
    bought = month_credits([base], known)
    assert len(bought) == 12 and set(bought.values()) == {STARTER}
    assert sorted(bought)[:3] == [ts(2026, 1, 31), ts(2026, 2, 28), ts(2026, 3, 31)]


def test_an_upgrade_within_the_period_buys_the_difference_for_the_rest_of_the_month():
    period = (ts(2026, 4, 1), ts(2026, 5, 1))
    halfway = ts(2026, 4, 16)
    known = periods({(*period, "monthly", 0)}, None)
    switch = [
        line(halfway, period[1], STARTER, amount=-250, proration=True),
        line(halfway, period[1], BUSINESS, amount=2000, proration=True),
    ]
    assert month_credits(switch, known) == {period[0]: (BUSINESS - STARTER) * Fraction(1, 2)}


def test_a_yearly_upgrade_within_the_period_buys_the_new_plan_for_every_month_left():
    year = (ts(2026, 1, 1), ts(2027, 1, 1))
    known = periods({(*year, "yearly", 0)}, None)
    switch_at = ts(2026, 6, 16)  # half of June left (30 days)
    switch = [
        line(switch_at, year[1], STARTER, amount=-2000, proration=True, cycle="yearly"),
        line(switch_at, year[1], BUSINESS, amount=20000, proration=True, cycle="yearly"),
    ]
    bought = month_credits(switch, known)
    assert bought[ts(2026, 6, 1)] == (BUSINESS - STARTER) * Fraction(15, 30)
    assert bought[ts(2026, 7, 1)] == bought[ts(2026, 12, 1)] == BUSINESS - STARTER
    assert ts(2026, 5, 1) not in bought


def test_a_new_period_ends_the_old_one_where_it_starts():
    old = line(ts(2026, 1, 1), ts(2027, 1, 1), STARTER, cycle="yearly", id="old")
    switch_at = ts(2026, 3, 11)  # 10 of March's 31 days used
    unused = line(switch_at, ts(2027, 1, 1), STARTER, -3000, True, "yearly", "unused")
    new = line(switch_at, ts(2027, 3, 11), BUSINESS, cycle="yearly", id="new")
    known = periods({(old.start, old.end, "yearly", 0), (new.start, new.end, "yearly", 1)}, None)
    # The old invoice: January to March only (the months after the switch never happened).
    assert month_credits([old], known) == {
        ts(2026, 1, 1): STARTER,
        ts(2026, 2, 1): STARTER,
        ts(2026, 3, 1): STARTER,
    }
    # The switch invoice: the unused part of March back, and the new period's months.
    bought = month_credits([unused, new], known)
    assert bought[ts(2026, 3, 1)] == -STARTER * Fraction(21, 31)
    assert bought[switch_at] == BUSINESS and len(bought) == 13


def test_an_ended_subscription_buys_no_months_after_its_end():
    year = line(ts(2026, 1, 1), ts(2027, 1, 1), STARTER, cycle="yearly")
    known = periods({(year.start, year.end, "yearly", 0)}, ended_at=ts(2026, 4, 20))
    assert sorted(month_credits([year], known)) == [ts(2026, m, 1) for m in (1, 2, 3, 4)]


def test_an_immediate_cancel_with_proration_gives_back_the_unused_part_of_its_month():
    year = line(ts(2026, 1, 1), ts(2027, 1, 1), STARTER, cycle="yearly")
    ended = ts(2026, 4, 16)  # half of April left
    credit = line(ended, ts(2027, 1, 1), STARTER, -3000, True, "yearly", "credit")
    known = periods({(year.start, year.end, "yearly", 0)}, ended_at=ended)
    assert month_credits([credit], known) == {ts(2026, 4, 1): -STARTER * Fraction(15, 30)}


def test_a_proration_of_a_period_never_seen_counts_back_one_cycle():
    credit = line(ts(2026, 5, 16), ts(2026, 6, 1), BUSINESS, -2000, True, "monthly")
    assert month_credits([credit], []) == {ts(2026, 5, 1): -BUSINESS * Fraction(16, 31)}


def test_a_discounted_period_still_buys_its_plan():
    free = line(ts(2026, 1, 1), ts(2026, 2, 1), STARTER, amount=0)
    assert month_credits([free], periods({(free.start, free.end, "monthly", 0)}, None)) == {
        free.start: STARTER
    }


def test_a_month_that_began_on_a_clamped_day_runs_to_the_anchor_day():
    """Anchor Jan 31: the period from Feb 28 runs to Mar 31 and is one month, not two."""
    base = line(ts(2026, 2, 28), ts(2026, 3, 31), STARTER)
    known = periods({(base.start, base.end, "monthly", 0)}, None)
    assert month_credits([base], known) == {ts(2026, 2, 28): STARTER}


def test_a_switch_in_the_second_its_period_began_replaces_that_period():
    """Bought monthly and switched to yearly at once: the month never happened (its price came
    back as a credit for unused time), the year did."""
    at = ts(2026, 11, 29)
    month = line(at, ts(2026, 12, 29), BUSINESS, id="month")
    unused = line(at, ts(2026, 12, 29), BUSINESS, amount=-3999, proration=True, id="unused")
    year = line(at, ts(2027, 11, 29), BUSINESS, cycle="yearly", id="year")
    known = periods({(at, month.end, "monthly", 0), (at, year.end, "yearly", 1)}, None)
    assert month_credits([month], known) == {}
    bought = month_credits([unused, year], known)
    assert bought[at] == BUSINESS and len(bought) == 12
