"""The scheduler and webhook events settle the same member at once, on PostgreSQL.

Every writer takes the member's lock before any of their subscription or invoice rows, so the
monthly-credits run and an invoice event wait for each other instead of deadlocking.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from tests.billing.member import Member
from tests.conftest import make_app
from tests.reliability.conftest import in_threads
from webapp import billing
from webapp.billing.sync import apply_invoice_state, fetch_invoice_state
from webapp.extensions import db

pytestmark = pytest.mark.postgres


def test_the_scheduler_and_invoice_events_take_turns(app, user_id, database_url, figures):
    with app.app_context():
        member = Member(app, user_id)
        member.subscribe("business", "yearly")
        invoice_id = member.live().latest_invoice
        start = datetime.now(UTC)
    stop = threading.Event()
    errors: list[BaseException] = []
    # One app per thread, as one per worker; built here, not in the threads: building an app
    # compiles its URL rules with `ast`, which CPython 3.11 cannot do in two threads at once
    # ("SystemError: AST constructor recursion depth mismatch", seen in CI).
    workers = [make_app(database_url) for _ in range(3)]

    def scheduler(other) -> None:
        with other.app_context():
            for days in range(0, 400, 7):
                if stop.is_set():
                    break
                try:
                    run = billing.grant_due_credits(start + timedelta(days=days))
                    assert not run.failed, run.failed
                except BaseException as exc:
                    errors.append(exc)
                    break
            db.engine.dispose()

    def events(other) -> None:
        with other.app_context():
            for _ in range(25):
                try:
                    apply_invoice_state(fetch_invoice_state(invoice_id))
                    db.session.commit()
                except BaseException as exc:
                    errors.append(exc)
                    break
            stop.set()
            db.engine.dispose()

    scheduler_app, *event_apps = workers
    in_threads(
        [lambda: scheduler(scheduler_app), *(lambda a=a: events(a) for a in event_apps)],
        workers=3,
    )
    figures.add("events delivered", 50)
    assert errors == []
    with app.app_context():
        # Every month up to the scheduler's last run, once: 12 months of Business.
        assert billing.credit_summary(user_id).balance <= 12 * 10_000
