"""What an invoice's lines buy, month by month: the arithmetic of "credits follow the money".

Pure functions over integers (Unix seconds, cents, credits), no database and no Stripe, so the
rules can be read, and tested, on their own. See README "Credits" for the rules in words.

- A billing period [start, end) is cut into credit months: a monthly period is one month, a
  yearly one twelve, month k beginning `add_months(start, k)` and the last one ending at the
  period's end. (A period is not cut by date arithmetic alone: a month that began on a clamped
  day, Feb 28 after a Jan 31 anchor, runs to Mar 31.)
- A period *happened* until its actual end: its own end, or sooner if a new period started inside
  it (a cycle switch, an upgrade that starts a new period) or the subscription ended. Months that
  begin at or after the actual end never happen and buy nothing.
- A line over [a, b) on a plan with C monthly credits buys, in each month M of its period that
  happened, C x |[a, b) ∩ M| / |M| credits. A line that credits unused time back (a negative
  proration) gives them back the same way. A full-price line covers whole months: C each.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from itertools import pairwise

MONTHS_IN_CYCLE = {"monthly": 1, "yearly": 12}


def add_months(moment: datetime, months: int) -> datetime:
    """`moment` plus whole calendar months, clamping the day (Jan 31 + 1 month = Feb 28/29).

    Counted from `moment` each time, not month by month, as Stripe counts from the billing cycle
    anchor: Jan 31 + 2 months is Mar 31, not Mar 28.
    """
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def _shift(timestamp: int, months: int) -> int:
    return int(add_months(datetime.fromtimestamp(timestamp, UTC), months).timestamp())


@dataclass(frozen=True)
class BilledLine:
    """One invoice line that bought (amount ≥ 0) or gave back (amount < 0) time on a plan."""

    id: str
    credits_per_month: int
    amount: int
    proration: bool
    start: int
    end: int
    cycle: str | None  # the line's price's cycle, to guess its period when none is known

    @property
    def sign(self) -> int:
        if not self.proration:
            return 1  # a period's price buys its plan's credits, whatever discount applied
        return (self.amount > 0) - (self.amount < 0)


@dataclass(frozen=True)
class Period:
    start: int
    end: int
    actual_end: int
    cycle: str | None = "monthly"

    def months(self) -> list[tuple[int, int]]:
        """The credit months [start, end) of the period, the last one ending at its end."""
        count = MONTHS_IN_CYCLE.get(self.cycle or "monthly", 1)
        bounds = [_shift(self.start, k) for k in range(count)] + [self.end]
        return [(begin, finish) for begin, finish in pairwise(bounds) if begin < finish]

    def happened_months(self) -> list[tuple[int, int]]:
        return [month for month in self.months() if month[0] < self.actual_end]


def periods(spans: set[tuple[int, int, str | None, int]], ended_at: int | None) -> list[Period]:
    """The subscription's billing periods, each with the time it actually ended.

    `spans` are (start, end, cycle, rank) of its full-price lines and its current period; `rank`
    orders them by when they were billed (a later invoice ranks higher), which settles a switch
    made in the very second its period began: the later period starts where the earlier ends.
    """
    best: dict[tuple[int, int], tuple[int, str | None]] = {}
    for start, end, cycle, rank in spans:
        if (start, end) not in best or rank > best[(start, end)][0]:
            best[(start, end)] = (rank, cycle)
    result = []
    for (start, end), (rank, cycle) in sorted(best.items()):
        actual_end = end
        for (other_start, other_end), (other_rank, _cycle) in best.items():
            replaced_at_once = other_start == start and other_end != end and other_rank > rank
            if start < other_start < actual_end or replaced_at_once:
                actual_end = min(actual_end, other_start)  # a new period began inside this one
        if ended_at is not None and start < ended_at < actual_end:
            actual_end = ended_at
        result.append(Period(start, end, actual_end, cycle))
    return result


def period_of(line: BilledLine, known: list[Period]) -> Period:
    """The billing period a line belongs to."""
    if not line.proration:
        for period in known:
            if (period.start, period.end) == (line.start, line.end):
                return period
        return Period(line.start, line.end, line.end, line.cycle)
    # A proration runs from the change to the end of the period it changed.
    for period in known:
        if period.end == line.end and period.start <= line.start:
            return period
    for period in known:
        if period.start <= line.start < period.end:
            return period
    # We never saw that period's own invoice: count back one cycle from its end (the month
    # boundaries may then be off by a day or two around the end of a month).
    start = _shift(line.end, -MONTHS_IN_CYCLE.get(line.cycle or "monthly", 1))
    return Period(start, line.end, line.end, line.cycle)


def month_credits(lines: list[BilledLine], known: list[Period]) -> dict[int, Fraction]:
    """What `lines` (one invoice's) buy in each month that happened, keyed by the month's
    start, before any refund."""
    credits: dict[int, Fraction] = defaultdict(Fraction)
    for line in lines:
        if not line.credits_per_month or not line.sign:
            continue
        for begin, finish in period_of(line, known).happened_months():
            overlap = min(line.end, finish) - max(line.start, begin)
            if overlap > 0:
                share = Fraction(overlap, finish - begin)
                credits[begin] += line.sign * line.credits_per_month * share
    return dict(credits)
