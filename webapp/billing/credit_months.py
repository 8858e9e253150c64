"""What an invoice's lines buy, month by month: the arithmetic of "credits follow the money".

Pure functions over integers (Unix seconds, cents, credits), no database and no Stripe, so the
rules can be read, and tested, on their own. See README "Credits" for the rules in words.

- A billing period [start, end) is cut into credit months: a monthly period is one month, a
  yearly one twelve, month k beginning `add_months(start, k)` and the last one ending at the
  period's end. (A period is not cut by date arithmetic alone: a month that began on a clamped
  day, Feb 28 after a Jan 31 anchor, runs to Mar 31.)
- A period *happened* until its actual end: its own end, or sooner where its unused time was
  credited back by a paid invoice (a cycle switch, an upgrade that starts a new period, a
  prorated cancellation) or where the subscription ended. Months that begin at or after the
  actual end never happen and buy nothing. The credit ends the period for what was billed
  before it (and for the credit itself), not for what its own invoice bills from then on: a
  switch in the very second its period began starts a period with the same dates. (A switch
  that is never paid ends nothing: the months already paid for go on being granted.)
- A line over [a, b) on a plan with C monthly credits (x its quantity) buys, in each month M of
  its period that happened, C x |[a, b) ∩ M| / |M| credits. A line that credits unused time back
  (a negative proration) gives them back the same way. A full-price line covers whole months.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction

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
    credits_per_month: int  # the plan's monthly credits x the line's quantity
    amount: int
    proration: bool
    start: int
    end: int
    cycle: str | None  # the line's price's cycle, to guess its period when none is known
    rank: int = 0  # its invoice's place in the order Stripe billed them

    @property
    def gives_back(self) -> bool:
        """Unused time credited back (a negative proration)."""
        return self.proration and self.amount < 0

    @property
    def buys(self) -> bool:
        # A period's price buys its plan's credits whatever discount applied; a proration buys
        # only when it charges something.
        return not self.proration or self.amount > 0


@dataclass(frozen=True)
class Cut:
    """Where a paid invoice (of billing rank `rank`) credited a period's unused time back."""

    at: int
    rank: int


@dataclass(frozen=True)
class Period:
    start: int
    end: int
    cycle: str | None = "monthly"
    cuts: tuple[Cut, ...] = ()
    ended_at: int | None = None  # when the subscription ended, if inside this period

    def months(self) -> list[tuple[int, int, int]]:
        """The credit months of the period: (start, end, end of a full month).

        A month runs to the next one's start, the last to the period's end. A full month is one
        calendar month from its start; only the last month of a period cut short (a renewal billed
        up to a cancellation date) is shorter than that, and buys its share.
        """
        count = MONTHS_IN_CYCLE.get(self.cycle or "monthly", 1)
        starts = [_shift(self.start, k) for k in range(count)]
        full_ends = [*starts[1:], max(self.end, _shift(self.start, count))]
        return [
            (begin, min(full_end, self.end), full_end)
            for begin, full_end in zip(starts, full_ends, strict=True)
            if begin < self.end
        ]

    def happened_months(self, line: BilledLine) -> list[tuple[int, int, int]]:
        """The months that happened, as far as `line` is concerned (see the module docstring)."""
        ends = [self.end]
        ends += [
            c.at
            for c in self.cuts
            if c.rank > line.rank or (line.gives_back and c.rank == line.rank)
        ]
        if self.ended_at is not None:
            ends.append(self.ended_at)
        actual_end = min(ends)
        return [month for month in self.months() if month[0] < actual_end]


def periods(
    spans: dict[tuple[int, int], str | None],
    *,
    ended_at: int | None,
    credited: list[BilledLine],
) -> list[Period]:
    """The subscription's billing periods, with where each was cut short.

    `spans` maps (start, end) of its full-price lines (and its current period) to their cycle;
    `credited` are the unused-time lines of its paid invoices.
    """
    raw = [Period(start, end, cycle) for (start, end), cycle in sorted(spans.items())]
    cuts: dict[tuple[int, int], list[Cut]] = {(period.start, period.end): [] for period in raw}
    for line in credited:
        period = period_of(line, raw)
        if (period.start, period.end) in cuts:
            cuts[(period.start, period.end)].append(Cut(max(line.start, period.start), line.rank))
    return [
        Period(
            p.start,
            p.end,
            p.cycle,
            tuple(cuts[(p.start, p.end)]),
            ended_at if ended_at is not None and p.start < ended_at < p.end else None,
        )
        for p in raw
    ]


def period_of(line: BilledLine, known: list[Period]) -> Period:
    """The billing period a line belongs to."""
    if not line.proration:
        for period in known:
            if (period.start, period.end) == (line.start, line.end):
                return period
        return Period(line.start, line.end, line.cycle)
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
    return Period(start, line.end, line.cycle)


@dataclass(frozen=True)
class MonthCredits:
    """What one invoice's lines do to one month: credits bought, and credits given back."""

    bought: Fraction = Fraction(0)
    given_back: Fraction = Fraction(0)


def month_credits(lines: list[BilledLine], known: list[Period]) -> dict[int, MonthCredits]:
    """What `lines` (one invoice's) buy and give back in each month that happened, keyed by the
    month's start, before any refund."""
    bought: dict[int, Fraction] = defaultdict(Fraction)
    given_back: dict[int, Fraction] = defaultdict(Fraction)
    for line in lines:
        if not line.credits_per_month or not (line.buys or line.gives_back):
            continue
        target = given_back if line.gives_back else bought
        for begin, finish, full_end in period_of(line, known).happened_months(line):
            overlap = min(line.end, finish) - max(line.start, begin)
            if overlap > 0:
                target[begin] += line.credits_per_month * Fraction(overlap, full_end - begin)
    return {
        month: MonthCredits(bought.get(month, Fraction(0)), given_back.get(month, Fraction(0)))
        for month in bought.keys() | given_back.keys()
    }
