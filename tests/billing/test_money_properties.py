"""Money invariants under random sequences of what customers, Stripe and support do.

A hypothesis state machine drives the site and the real SDK against the sandbox, on the test
database (SQLite, or PostgreSQL in CI's second run): checkout with cards that pay, fail at
renewal or get disputed; plan switches in the portal (upgrades at once, downgrades scheduled)
and from the "Dashboard" (the API, prorated or not, mid-period); cancel, resume, keep the
plan; the test clock (renewals, failed renewals, schedules, cancellations, yearly months);
partial and full refunds; disputes won and lost; a new card; replayed events.

After every step it checks, against Stripe's own state read through the SDK:

- our subscription rows say what Stripe says (plan and cycle from the price, status, period,
  when it ends, the switch it has scheduled);
- the credits each invoice granted in each month are what that invoice bought there, pro rata
  of what stayed paid (computed here, independently, from Stripe's invoices, lines, prices,
  charges and disputes), and no month ever holds more than the dearest plan billed in it;
- nothing is granted twice: replaying events changes nothing.
"""

from __future__ import annotations

import calendar
import os
from collections import defaultdict
from datetime import UTC, datetime
from fractions import Fraction
from math import floor
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

from tests.billing.member import CARDS, Member, price_id
from tests.billing_helpers import post_event, sandbox_events
from tests.conftest import _empty_all_tables, create_user, make_app, sql
from webapp import billing
from webapp.billing.sync import (
    apply_invoice_state,
    apply_subscription_state,
    fetch_invoice_state,
    fetch_subscription_state,
)
from webapp.catalog import get_catalog
from webapp.extensions import db
from webapp.stripe_gateway import get_gateway

PLANS = [
    (plan, cycle)
    for plan in ("starter", "professional", "business", "agency")
    for cycle in ("monthly", "yearly")
]
WITHDRAWN = {"needs_response", "under_review", "lost"}
MONTHS = {"month": 1, "year": 12}


# --- Stripe's side, read through the SDK ---------------------------------------------------


def stripe_now() -> int:
    """The sandbox's "now": the wall clock plus what the test clock advanced."""
    with get_gateway().sandbox_instance.store() as store:
        return store.now()


class StripeView:
    """Everything Stripe knows about the customer, read once per check."""

    def __init__(self, customer_id: str) -> None:
        client = get_gateway().client.v1
        self.subscriptions = list(
            client.subscriptions.list(
                params={
                    "customer": customer_id,
                    "status": "all",
                    "limit": 100,
                    "expand": ["data.schedule"],
                }
            ).auto_paging_iter()
        )
        self.invoices = list(
            client.invoices.list(params={"customer": customer_id, "limit": 100}).auto_paging_iter()
        )
        self.lines = {
            inv.id: list(
                client.invoices.line_items.list(inv.id, params={"limit": 100}).auto_paging_iter()
            )
            for inv in self.invoices
        }
        self._prices: dict[str, Any] = {}
        self.money_back: dict[str, int] = defaultdict(int)  # invoice → refunded + disputed cents
        for inv in self.invoices:
            if inv.status != "paid" or not inv.amount_paid:
                continue
            payments = client.invoice_payments.list(params={"invoice": inv.id, "limit": 100})
            for payment in payments.data:
                pi = payment.payment.payment_intent
                pi = pi if isinstance(pi, str) else pi.id
                for charge in client.charges.list(params={"payment_intent": pi}).data:
                    self.money_back[inv.id] += charge.amount_refunded
                for dispute in client.disputes.list(params={"payment_intent": pi}).data:
                    if dispute.status in WITHDRAWN:
                        self.money_back[inv.id] += dispute.amount

    def price(self, price: Any) -> Any:
        price_id = price if isinstance(price, str) else price.id
        if price_id not in self._prices:
            self._prices[price_id] = get_gateway().client.v1.prices.retrieve(price_id)
        return self._prices[price_id]

    def plan_of(self, price: Any) -> tuple[str, str]:
        metadata = self.price(price).metadata
        return metadata["plan_id"], metadata["cycle"]

    def credits(self, line: Any) -> int:
        """A line's plan's monthly credits, times its quantity."""
        plan, _cycle = self.plan_of(_price(line))
        return get_catalog().plan(plan).monthly_credits * (line.quantity or 1)


# --- the expected ledger, from Stripe's invoices (independent of webapp.billing) ----------


def shift_months(timestamp: int, months: int) -> int:
    moment = datetime.fromtimestamp(timestamp, UTC)
    total = moment.month - 1 + months
    year, month = moment.year + total // 12, total % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp())


def credit_months(start: int, end: int, cycle: str) -> list[tuple[int, int, int]]:
    """(start, end, end of a full month) of each credit month of a period."""
    count = 12 if cycle == "yearly" else 1
    starts = [shift_months(start, k) for k in range(count)]
    full_ends = [*starts[1:], max(end, shift_months(start, count))]
    return [(b, min(f, end), f) for b, f in zip(starts, full_ends, strict=True) if b < end]


def expected_ledger(view: StripeView, now: int) -> dict[tuple[str, int], int]:
    """{(invoice id, month start): credits} for every month that has begun, by the README's
    rules, computed from Stripe's own invoices, lines, prices, charges and disputes."""
    expected: dict[tuple[str, int], int] = {}
    for sub in view.subscriptions:
        invoices = sorted(
            (i for i in view.invoices if _subscription_of(i) == sub.id),
            key=lambda i: (i.created, int((i.number or "-0").rsplit("-", 1)[1])),
        )
        rank = {inv.id: n for n, inv in enumerate(invoices)}
        periods, cuts = _periods_of(view, sub, invoices, rank)
        for inv in invoices:
            lines = view.lines[inv.id]
            bought: dict[int, Fraction] = defaultdict(Fraction)
            given_back: dict[int, Fraction] = defaultdict(Fraction)
            for line in lines:
                credits = view.credits(line)
                charged, credit = not _proration(line) or line.amount > 0, _gives_back(line)
                if not (charged or credit):
                    continue
                start, end = line.period.start, line.period.end
                period = _period(periods, start, end, _proration(line))
                cycle = periods.get(period) or view.plan_of(_price(line))[1]
                # What ended the period before this line's months: credits of later invoices (of
                # its own too, for a credit), and the end of the subscription.
                stops = [period[1]] + [
                    at
                    for at, by in cuts.get(period, [])
                    if by > rank[inv.id] or (credit and by == rank[inv.id])
                ]
                if sub.ended_at and period[0] < sub.ended_at < period[1]:
                    stops.append(sub.ended_at)
                for m_start, m_end, full_end in credit_months(*period, cycle):
                    if m_start >= min(stops):
                        continue
                    overlap = min(end, m_end) - max(start, m_start)
                    if overlap > 0:
                        share = credits * Fraction(overlap, full_end - m_start)
                        (given_back if credit else bought)[m_start] += share
            kept = Fraction(0)
            if inv.status == "paid":
                charged_cents = sum(
                    line.amount for line in lines if not _proration(line) or line.amount > 0
                )
                back = min(view.money_back[inv.id], charged_cents)
                kept = Fraction(charged_cents - back, charged_cents) if charged_cents > 0 else 1
            started = max([now, *(line.period.start for line in lines)])
            for month in bought.keys() | given_back.keys():
                if month <= started and kept:
                    expected[(inv.id, month)] = floor(kept * bought[month] - given_back[month])
    return {key: value for key, value in expected.items() if value}


def _periods_of(view: StripeView, sub: Any, invoices: list[Any], rank: dict[str, int]):
    """A subscription's periods (start, end) → cycle, and where each was credited back: a list
    of (time, billing rank of the paid invoice that credited it)."""
    item = sub["items"]["data"][0]
    periods = {(item.current_period_start, item.current_period_end): view.plan_of(item.price)[1]}
    for inv in invoices:
        for line in view.lines[inv.id] if inv.status != "void" else []:
            if not _proration(line):
                periods[(line.period.start, line.period.end)] = view.plan_of(_price(line))[1]
    cuts: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    for inv in invoices:
        for line in view.lines[inv.id] if inv.status == "paid" else []:
            if _gives_back(line):
                period = _period(periods, line.period.start, line.period.end, True)
                cuts[period].append((max(line.period.start, period[0]), rank[inv.id]))
    return periods, cuts


def money_bound(view: StripeView, invoice: Any) -> tuple[Fraction, Fraction]:
    """What an invoice's money can buy at list price: each charging line's amount x its plan's
    credits per cent (twelve months' credits per yearly price), less what went back; with a
    tolerance for Stripe's rounding of prorations to the cent."""
    if invoice.status != "paid":
        return Fraction(0), Fraction(0)
    lines = [line for line in view.lines[invoice.id] if line.amount > 0]
    charged = sum(line.amount for line in lines)
    kept = Fraction(charged - min(view.money_back[invoice.id], charged), charged) if charged else 1
    bound, tolerance = Fraction(0), Fraction(1)
    for line in lines:
        price = view.price(_price(line))
        months = 12 if price.recurring.interval == "year" else 1
        per_cent = Fraction(view.credits(line) * months, price.unit_amount * line.quantity)
        bound += kept * line.amount * per_cent
        tolerance += per_cent
    return bound, tolerance


def _subscription_of(invoice: Any) -> str | None:
    details = invoice.parent.subscription_details if invoice.parent else None
    return details.subscription if details else None


def _proration(line: Any) -> bool:
    details = line.parent.subscription_item_details or line.parent.invoice_item_details
    return bool(details and details.proration)


def _id(value: Any) -> str:
    return value if isinstance(value, str) else value.id


def _gives_back(line: Any) -> bool:
    return _proration(line) and line.amount < 0


def _price(line: Any) -> Any:
    return line.pricing.price_details.price


def _period(periods: dict, start: int, end: int, proration: bool) -> tuple[int, int]:
    if not proration:
        return (start, end)
    for period_start, period_end in periods:
        if period_end == end and period_start <= start:
            return (period_start, period_end)
    for period_start, period_end in periods:
        if period_start <= start < period_end:
            return (period_start, period_end)
    raise AssertionError(f"no period for a proration [{start}, {end})")


# --- the machine -------------------------------------------------------------------------


class Billing(RuleBasedStateMachine):
    def __init__(self, database_url: str) -> None:
        super().__init__()
        self.database_url = database_url
        self.app = make_app(database_url)
        self.ctx = self.app.app_context()
        self.ctx.push()
        self.user_id = create_user(self.app)
        self.member = Member(self.app, self.user_id)
        self.client = self.member.client
        self.steps: list[str] = []

    def teardown(self) -> None:
        db.session.remove()
        self.ctx.pop()
        with self.app.app_context():
            db.engine.dispose()
        _empty_all_tables(self.database_url)

    def customer_id(self) -> str | None:
        return self.member.customer_id()

    def live(self) -> Any | None:
        return self.member.live()

    def has_live(self) -> bool:
        return self.live() is not None

    # --- rules -----------------------------------------------------------------------

    @precondition(lambda self: not self.has_live())
    @rule(plan=st.sampled_from(PLANS), card=st.sampled_from(sorted(CARDS)))
    def subscribe(self, plan, card):
        self.steps.append(f"subscribe {plan} {card}")
        self.member.subscribe(*plan, card=card)

    @precondition(lambda self: self.has_live())
    @rule(plan=st.sampled_from(PLANS))
    def switch_in_portal(self, plan):
        self.steps.append(f"portal switch {plan}")
        self.member.switch(*plan)

    @precondition(lambda self: self.has_live())
    @rule(
        plan=st.sampled_from(PLANS),
        proration=st.sampled_from(["always_invoice", "create_prorations", "none"]),
    )
    def switch_in_dashboard(self, plan, proration):
        """Support changes the plan mid-period from the Dashboard (the API): no policy applies."""
        self.steps.append(f"dashboard switch {plan} {proration}")
        sub = self.live()
        item = sub["items"]["data"][0]
        get_gateway().client.v1.subscriptions.update(
            sub.id,
            params={
                "items": [{"id": item.id, "price": price_id(*plan)}],
                "proration_behavior": proration,
            },
        )

    @precondition(lambda self: self.has_live())
    @rule(reason=st.sampled_from(["too_expensive", "unused", "other"]))
    def cancel(self, reason):
        self.steps.append("cancel")
        self.member.portal("cancel", reason=reason)

    @precondition(lambda self: self.has_live())
    @rule()
    def resume(self):
        self.steps.append("resume")
        self.member.portal("resume")

    @precondition(lambda self: self.has_live())
    @rule()
    def keep_plan(self):
        self.steps.append("keep plan")
        self.member.portal("keep-plan")

    @precondition(lambda self: self.customer_id() is not None)
    @rule()
    def new_card(self):
        self.steps.append("new card")
        self.member.portal("card", card_number=CARDS["pays"], expiry="12 / 34", cvc="123")

    @precondition(lambda self: self.customer_id() is not None)
    @rule(days=st.sampled_from([1, 9, 16, 31, 62, 95, 190, 370]))
    def time_passes(self, days):
        self.steps.append(f"advance {days} days")
        self.member.advance(days)

    @precondition(lambda self: self.customer_id() is not None)
    @rule(
        which=st.integers(0, 20),
        share=st.sampled_from([Fraction(1, 3), Fraction(1, 2), Fraction(1)]),
    )
    def refund(self, which, share):
        client = get_gateway().client.v1
        charges = [
            c
            for c in client.charges.list(params={"customer": self.customer_id(), "limit": 100}).data
            if c.status == "succeeded" and not c.refunded and not c.disputed
        ]
        if not charges:
            return
        charge = charges[which % len(charges)]
        amount = max(1, floor((charge.amount - charge.amount_refunded) * share))
        self.steps.append(f"refund {amount} of {charge.amount}")
        client.refunds.create(params={"payment_intent": charge.payment_intent, "amount": amount})

    @precondition(lambda self: self.customer_id() is not None)
    @rule(won=st.booleans())
    def dispute_closes(self, won):
        client = get_gateway().client.v1
        open_disputes = [
            d
            for d in client.disputes.list(params={"limit": 100}).data
            if d.status == "needs_response"
        ]
        if not open_disputes:
            return
        self.steps.append(f"dispute {'won' if won else 'lost'}")
        evidence = "winning_evidence" if won else "losing_evidence"
        client.disputes.update(
            open_disputes[0].id, params={"evidence": {"uncategorized_text": evidence}}
        )

    @precondition(lambda self: self.has_live())
    @rule(change=st.sampled_from(["refund", "cancel"]))
    def a_slow_worker_commits_last(self, change):
        """A webhook worker reads Stripe, Stripe changes (and that change's events are
        processed), then the slow worker writes what it read: it must change nothing."""
        self.steps.append(f"slow worker, then {change}")
        sub = self.live()
        stale_invoice = fetch_invoice_state(sub.latest_invoice)
        stale_subscription = fetch_subscription_state(sub.id)
        client = get_gateway().client.v1
        if change == "cancel":
            client.subscriptions.cancel(sub.id)
        else:
            payments = client.invoice_payments.list(params={"invoice": sub.latest_invoice}).data
            intents = [_id(payment.payment.payment_intent) for payment in payments]
            charges = [
                charge
                for intent in intents
                for charge in client.charges.list(params={"payment_intent": intent}).data
                if charge.status == "succeeded" and not charge.refunded and not charge.disputed
            ]
            if charges:
                client.refunds.create(params={"charge": charges[0].id})
        apply_invoice_state(stale_invoice)
        apply_subscription_state(stale_subscription)
        db.session.commit()

    @precondition(lambda self: self.customer_id() is not None)
    @rule(count=st.integers(1, 12))
    def events_come_again(self, count):
        """Stripe delivers at least once: the latest events, again, in reverse order."""
        self.steps.append(f"replay {count} events")
        before = self.ledger(), sql(self.app, "select * from subscriptions order by id")
        events = [
            e for e in sandbox_events(self.app) if not e["type"].startswith(("product.", "price."))
        ]
        for event in reversed(events[-count:]):
            assert post_event(self.client, event).status_code == 200
        after = self.ledger(), sql(self.app, "select * from subscriptions order by id")
        assert after == before, "a replayed event changed something"

    # --- invariants ------------------------------------------------------------------

    def ledger(self) -> dict[tuple[str, int], int]:
        rows = sql(
            self.app,
            "select invoice_id, period_key, sum(amount) from credit_entries "
            "where user_id = :id group by invoice_id, period_key",
            id=self.user_id,
        )
        ledger = {}
        for invoice_id, period_key, amount in rows:
            month = int(datetime.fromisoformat(period_key.partition(":")[2]).timestamp())
            if amount:
                ledger[(invoice_id, month)] = int(amount)
        return ledger

    @invariant()
    def subscriptions_match_stripe(self):
        customer = self.customer_id()
        if customer is None:
            return
        view = StripeView(customer)
        ours = {
            row[0]: row[1:]
            for row in sql(
                self.app,
                "select stripe_subscription_id, plan_id, cycle, status, current_period_start, "
                "current_period_end, cancel_at, cancel_at_period_end, pending_plan_id, "
                "pending_cycle, pending_change_at from subscriptions",
            )
        }
        for sub in view.subscriptions:
            item = sub["items"]["data"][0]
            plan, cycle = view.plan_of(item.price)
            ends = sub.cancel_at or (item.current_period_end if sub.cancel_at_period_end else None)
            pending = _pending(view, sub, item)
            row = ours.get(sub.id)
            assert row is not None, f"{sub.id} is not stored; steps: {self.steps}"
            plan_ours, cycle_ours, status, start, end, cancel_at, at_period_end = row[:7]
            ends_ours = (
                _ts(cancel_at) if cancel_at is not None else (_ts(end) if at_period_end else None)
            )
            assert (plan_ours, cycle_ours, status) == (plan, cycle, sub.status), self.steps
            period = (item.current_period_start, item.current_period_end)
            assert (_ts(start), _ts(end)) == period, self.steps
            assert ends_ours == ends, self.steps
            assert (row[7], row[8], _ts(row[9])) == pending, self.steps

    @invariant()
    def credits_follow_the_money(self):
        customer = self.customer_id()
        if customer is None:
            return
        now = stripe_now()
        # The hourly scheduler has caught up by Stripe's clock (the test clock runs ahead of ours,
        # so months a webhook's settling sees as not begun yet are the scheduler's to grant).
        assert not billing.grant_due_credits(datetime.fromtimestamp(now, UTC)).failed
        view = StripeView(customer)
        expected = expected_ledger(view, now)
        actual = self.ledger()
        assert actual == expected, f"steps: {self.steps}\nexpected {expected}\nactual {actual}"
        # Independently of months and periods: no invoice has granted more than its money
        # buys at list price (what it gave back aside, which a balance credit may spend later).
        for invoice in view.invoices:
            bound, tolerance = money_bound(view, invoice)
            granted = sum(max(v, 0) for (i, _m), v in actual.items() if i == invoice.id)
            assert granted <= bound + tolerance, (invoice.id, granted, bound, self.steps)


def _ts(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp())


def _pending(view: StripeView, sub: Any, item: Any) -> tuple[str | None, str | None, int | None]:
    schedule = sub.schedule
    if (
        schedule is None
        or isinstance(schedule, str)
        or schedule.status not in ("not_started", "active")
    ):
        return (None, None, None)
    for phase in schedule.phases:
        if phase.start_date < item.current_period_end or not phase["items"]:
            continue
        price = phase["items"][0].price
        if (price if isinstance(price, str) else price.id) == item.price.id:
            continue
        plan, cycle = view.plan_of(price)
        return (plan, cycle, phase.start_date)
    return (None, None, None)


def test_money_invariants_hold_under_random_sequences(_schema, database_url):
    """MONEY_EXAMPLES=200 pytest tests/billing/test_money_properties.py tries harder."""
    run_state_machine_as_test(
        lambda: Billing(database_url),
        settings=settings(
            max_examples=int(os.environ.get("MONEY_EXAMPLES", "15")),
            stateful_step_count=14,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
