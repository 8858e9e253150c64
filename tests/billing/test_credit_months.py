"""The arithmetic of "credits follow the money", on plain numbers (billing/credit_months.py)."""

from datetime import UTC, datetime
from fractions import Fraction

import pytest

from webapp.billing.credit_months import BilledLine, add_months, month_credits, periods

STARTER, BUSINESS = 1000, 10_000


def ts(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())


def line(start, end, credits, amount=100, proration=False, cycle="monthly", id="il", rank=0):
    """A line of the invoice billed `rank`-th (0: the first)."""
    return BilledLine(id, credits, amount, proration, start, end, cycle, rank)


def net(lines, known) -> dict[int, Fraction]:
    """Bought less given back, per month (what a fully paid invoice grants)."""
    return {m: c.bought - c.given_back for m, c in month_credits(lines, known).items()}


def spans(*pairs) -> dict:
    return {(p.start, p.end): p.cycle for p in pairs}


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
    known = periods(spans(base), ended_at=None, credited=[])
    assert net([base], known) == {ts(2026, 1, 10): STARTER}


def test_a_yearly_invoice_buys_twelve_months_from_a_31st():
    base = line(ts(2026, 1, 31), ts(2027, 1, 31), STARTER, cycle="yearly")
    bought = net([base], periods(spans(base), ended_at=None, credited=[]))
    assert len(bought) == 12 and set(bought.values()) == {STARTER}
    assert sorted(bought)[:3] == [ts(2026, 1, 31), ts(2026, 2, 28), ts(2026, 3, 31)]


def test_a_month_that_began_on_a_clamped_day_runs_to_the_anchor_day():
    """Anchor Jan 31: the period from Feb 28 runs to Mar 31 and is one month, not two."""
    base = line(ts(2026, 2, 28), ts(2026, 3, 31), STARTER)
    assert net([base], periods(spans(base), ended_at=None, credited=[])) == {
        ts(2026, 2, 28): STARTER
    }


@pytest.mark.parametrize("cycle", ["monthly", "yearly"])
def test_a_period_cut_short_buys_its_share_of_its_last_month(cycle):
    """A renewal billed up to a cancellation 14 days in buys 14/31 of January, on any price."""
    short = line(ts(2026, 1, 1), ts(2026, 1, 15), 1000, cycle=cycle)
    bought = net([short], periods(spans(short), ended_at=None, credited=[]))
    assert bought == {ts(2026, 1, 1): 1000 * Fraction(14, 31)}


def test_an_upgrade_within_the_period_buys_the_difference_for_the_rest_of_the_month():
    base = line(ts(2026, 4, 1), ts(2026, 5, 1), STARTER)
    halfway = ts(2026, 4, 16)
    switch = [
        line(halfway, base.end, STARTER, amount=-250, proration=True, rank=1),
        line(halfway, base.end, BUSINESS, amount=2000, proration=True, rank=1),
    ]
    known = periods(spans(base), ended_at=None, credited=switch[:1])
    credits = month_credits(switch, known)[base.start]
    assert (credits.bought, credits.given_back) == (BUSINESS / Fraction(2), STARTER / Fraction(2))


def test_a_yearly_upgrade_within_the_period_buys_the_new_plan_for_every_month_left():
    year = line(ts(2026, 1, 1), ts(2027, 1, 1), STARTER, cycle="yearly")
    switch_at = ts(2026, 6, 16)  # half of June left (30 days)
    switch = [
        line(switch_at, year.end, STARTER, amount=-2000, proration=True, cycle="yearly"),
        line(switch_at, year.end, BUSINESS, amount=20000, proration=True, cycle="yearly"),
    ]
    bought = net(switch, periods(spans(year), ended_at=None, credited=[]))
    assert bought[ts(2026, 6, 1)] == (BUSINESS - STARTER) * Fraction(15, 30)
    assert bought[ts(2026, 7, 1)] == bought[ts(2026, 12, 1)] == BUSINESS - STARTER
    assert ts(2026, 5, 1) not in bought


def test_unused_time_credited_by_a_paid_invoice_ends_the_period_there():
    old = line(ts(2026, 1, 1), ts(2027, 1, 1), STARTER, cycle="yearly", id="old")
    switch_at = ts(2026, 3, 11)  # 10 of March's 31 days used
    unused = line(switch_at, ts(2027, 1, 1), STARTER, -3000, True, "yearly", "unused", rank=1)
    new = line(switch_at, ts(2027, 3, 11), BUSINESS, cycle="yearly", id="new", rank=1)
    known = periods(spans(old, new), ended_at=None, credited=[unused])
    # The old invoice: January to March only (the months after the switch never happened).
    assert net([old], known) == {
        m: STARTER for m in (ts(2026, 1, 1), ts(2026, 2, 1), ts(2026, 3, 1))
    }
    # The switch invoice: the unused part of March back, and the new period's months.
    bought = net([unused, new], known)
    assert bought[ts(2026, 3, 1)] == -STARTER * Fraction(21, 31)
    assert bought[switch_at] == BUSINESS and len(bought) == 13


def test_a_switch_nobody_paid_for_ends_nothing():
    """Stripe applies an upgrade whose card fails; the year already paid goes on."""
    old = line(ts(2026, 1, 1), ts(2027, 1, 1), STARTER, cycle="yearly", id="old")
    new = line(ts(2026, 3, 11), ts(2027, 3, 11), BUSINESS, cycle="yearly", id="new")
    known = periods(spans(old, new), ended_at=None, credited=[])  # the unused line: unpaid
    assert len(net([old], known)) == 12


def test_an_ended_subscription_buys_no_months_after_its_end():
    year = line(ts(2026, 1, 1), ts(2027, 1, 1), STARTER, cycle="yearly")
    known = periods(spans(year), ended_at=ts(2026, 4, 20), credited=[])
    assert sorted(net([year], known)) == [ts(2026, m, 1) for m in (1, 2, 3, 4)]


def test_an_immediate_cancel_with_proration_gives_back_the_unused_part_of_its_month():
    year = line(ts(2026, 1, 1), ts(2027, 1, 1), STARTER, cycle="yearly")
    ended = ts(2026, 4, 16)  # half of April left
    credit = line(ended, ts(2027, 1, 1), STARTER, -3000, True, "yearly", "credit", rank=1)
    known = periods(spans(year), ended_at=ended, credited=[credit])
    assert net([credit], known) == {ts(2026, 4, 1): -STARTER * Fraction(15, 30)}


def test_a_proration_of_a_period_never_seen_counts_back_one_cycle():
    credit = line(ts(2026, 5, 16), ts(2026, 6, 1), BUSINESS, -2000, True, "monthly")
    assert net([credit], []) == {ts(2026, 5, 1): -BUSINESS * Fraction(16, 31)}


def test_a_discounted_period_still_buys_its_plan():
    free = line(ts(2026, 1, 1), ts(2026, 2, 1), STARTER, amount=0)
    assert net([free], periods(spans(free), ended_at=None, credited=[])) == {free.start: STARTER}


def test_a_same_plan_switch_in_the_second_its_period_began_keeps_the_new_period():
    """Starter monthly bought and switched to Agency monthly in one second: same dates, two
    periods; the credit ends the first for Starter's invoice, not for Agency's."""
    at, end = ts(2026, 11, 29), ts(2026, 12, 29)
    starter = line(at, end, STARTER, id="starter")
    unused = line(at, end, STARTER, amount=-499, proration=True, id="unused", rank=1)
    agency = line(at, end, 30_000, id="agency", rank=1)
    known = periods(spans(starter, agency), ended_at=None, credited=[unused])
    assert net([starter], known) == {}
    assert net([unused, agency], known) == {at: 30_000}


def test_a_switch_in_the_second_its_period_began_replaces_that_period():
    """Bought monthly and switched to yearly at once: the month never happened (its price came
    back as a credit for unused time), the year did."""
    at = ts(2026, 11, 29)
    month = line(at, ts(2026, 12, 29), BUSINESS, id="month")
    unused = line(at, ts(2026, 12, 29), BUSINESS, amount=-3999, proration=True, id="u", rank=1)
    year = line(at, ts(2027, 11, 29), BUSINESS, cycle="yearly", id="year", rank=1)
    known = periods(spans(month, year), ended_at=None, credited=[unused])
    assert net([month], known) == {}
    bought = net([unused, year], known)
    assert bought[at] == BUSINESS and len(bought) == 12
