"""Monthly credits of yearly plans, run by the schedule on two hosts at once: each month once.

A hypothesis state machine moves the sandbox's test clock by random steps through a yearly
Business subscription's year; after each step two "hosts" (two apps on one database, on real
threads) run the scheduled credits job for the same slot, as two beats ticking together, and
sometimes an operator's `flask jobs run` at the same moment. Invariants after every step:

- the member holds exactly the credits of the months begun so far (Stripe's time), each once;
- each slot has exactly one `job_runs` row, and only one host ran it.

Runs on SQLite and on PostgreSQL (CI's second run).
"""

from __future__ import annotations

import calendar
import uuid
from datetime import UTC, datetime

from flask import Flask
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

from tests.billing.member import Member
from tests.conftest import create_user
from tests.reliability.conftest import in_threads
from webapp import billing, jobs
from webapp.extensions import db
from webapp.jobs.schedules import run_in_slot, schedule_for, slot_of
from webapp.models import JobRun
from webapp.stripe_gateway import get_gateway

JOB = "credits.grant_due"
YEAR_DAYS = 330  # stay inside the first year: its renewal is another invoice's month 0


def months_begun(start: datetime, now: datetime) -> int:
    """Months k = 0..11 whose start (start + k calendar months, day clamped) is not after now;
    written out here, independently of webapp/billing/credit_months.py."""
    count = 0
    for k in range(12):
        index = start.month - 1 + k
        year, month = start.year + index // 12, index % 12 + 1
        day = min(start.day, calendar.monthrange(year, month)[1])
        if start.replace(year=year, month=month, day=day) <= now:
            count += 1
    return count


class TwoHostSchedule(RuleBasedStateMachine):
    app: Flask
    other: Flask

    @initialize()
    def subscribe(self) -> None:
        email = f"{uuid.uuid4().hex[:12]}@example.com"
        self.user_id = create_user(self.app, email=email)
        with self.app.app_context():
            member = Member(self.app, self.user_id, email=email)
            member.subscribe("business", "yearly")
            self.monthly = member.balance()  # month 0, granted when the year was paid
            live = member.live()
            self.start = datetime.fromtimestamp(
                live["items"]["data"][0]["current_period_start"], UTC
            )
            self.client = member.client
        self.advanced = 0.0

    @precondition(lambda self: self.advanced < YEAR_DAYS)
    @rule(days=st.floats(min_value=0.5, max_value=75))
    def time_passes(self, days: float) -> None:
        days = min(days, YEAR_DAYS - self.advanced)
        response = self.client.post("/sandbox/control/advance", json={"days": days})
        assert response.status_code == 200
        self.advanced += days

    @rule(manual_too=st.booleans())
    def both_hosts_tick(self, manual_too: bool) -> None:
        with self.app.app_context():
            now = datetime.fromtimestamp(get_gateway().now(), UTC)
        # Both beats tick for the same slot (of Stripe's clock: the test clock jumps by days).
        slot = slot_of(now, schedule_for(JOB).every)
        ran_before = self.runs(slot)

        def tick(app: Flask, manual: bool = False):
            with app.app_context():
                function = jobs.registered_jobs()[JOB].function
                if manual:
                    return run_in_slot(JOB, function, manual=True).ran
                return run_in_slot(JOB, function, slot=slot).ran

        calls = [lambda: tick(self.app), lambda: tick(self.other)]
        if manual_too:
            calls.append(lambda: tick(self.other, manual=True))
        ran = in_threads(calls, workers=len(calls))
        # One of the two beats ran the slot (none if an earlier step claimed it already).
        assert sum(ran[:2]) == (0 if ran_before else 1)
        assert self.runs(slot) == 1
        if any(ran):
            # Whoever ran, every month begun by now is in, each once.
            assert self.granted() == months_begun(self.start, now) * self.monthly

    def granted(self) -> int:
        with self.app.app_context():
            return billing.credit_summary(self.user_id).balance

    def runs(self, slot: datetime) -> int:
        with self.app.app_context():
            return db.session.scalar(
                select(func.count()).where(JobRun.job == JOB, JobRun.slot == slot)
            )

    @invariant()
    def never_more_than_the_months_begun(self) -> None:
        with self.app.app_context():
            now = datetime.fromtimestamp(get_gateway().now(), UTC)
        granted = self.granted()
        assert self.monthly <= granted <= months_begun(self.start, now) * self.monthly
        assert granted % self.monthly == 0


def test_monthly_credits_are_granted_once_per_month_with_two_schedulers(
    app: Flask, other_worker: Flask
) -> None:
    TwoHostSchedule.app, TwoHostSchedule.other = app, other_worker
    run_state_machine_as_test(
        TwoHostSchedule,
        settings=settings(
            max_examples=6,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
