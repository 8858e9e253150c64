"""The schedules: one run per slot, `flask jobs status|run|run-due`, and /readyz's job check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from tests.reliability.conftest import in_threads
from webapp.extensions import db
from webapp.jobs.schedules import (
    SCHEDULES,
    AlignedSchedule,
    beat_schedule,
    job_statuses,
    run_in_slot,
    slot_of,
)
from webapp.models import JobRun
from webapp.models.base import utcnow

SLOT = datetime(2026, 11, 29, 13, 0, tzinfo=UTC)


def test_two_hosts_claiming_one_slot_run_the_job_once(app, other_worker):
    calls: list[str] = []

    def tick(flask_app, name):
        with flask_app.app_context():
            return run_in_slot("mail.deliver_due", lambda: calls.append(name), slot=SLOT).ran

    ran = in_threads([lambda: tick(app, "a"), lambda: tick(other_worker, "b")], workers=2)
    assert sorted(ran) == [False, True] and len(calls) == 1
    with app.app_context():
        [run] = db.session.scalars(select(JobRun)).all()
        assert (run.job, run.slot, run.trigger) == ("mail.deliver_due", SLOT, "schedule")
        assert run.finished_at is not None and run.failed_at is None


def test_a_failing_job_is_recorded_and_raised(app):
    with app.app_context():

        def boom():
            raise RuntimeError("smtp down")

        with pytest.raises(RuntimeError):
            run_in_slot("mail.deliver_due", boom, slot=SLOT)
        run = db.session.scalar(select(JobRun))
        assert run.failed_at is not None and run.finished_at is None
        assert run.summary == "RuntimeError: smtp down"


def test_slots_are_aligned_so_every_beat_ticks_for_the_same_one():
    every = timedelta(minutes=15)
    assert slot_of(datetime(2026, 1, 1, 10, 14, 59, tzinfo=UTC), every) == datetime(
        2026, 1, 1, 10, 0, tzinfo=UTC
    )
    schedule = AlignedSchedule(every)
    schedule.now = lambda: datetime(2026, 1, 1, 10, 16, tzinfo=UTC)  # type: ignore[method-assign]
    due, next_in = schedule.is_due(datetime(2026, 1, 1, 10, 14, tzinfo=UTC))
    assert due and next_in == 14 * 60
    due, _ = schedule.is_due(datetime(2026, 1, 1, 10, 15, 30, tzinfo=UTC))
    assert not due
    entries = beat_schedule()
    assert set(entries) == {entry.job for entry in SCHEDULES}
    assert all(e["task"] == "jobs.scheduled" and e["args"] == (job,) for job, e in entries.items())


def record(app, job: str, started: datetime, *, failed: bool = False) -> None:
    with app.app_context():
        db.session.add(
            JobRun(
                job=job,
                slot=started,
                host="test:1",
                started_at=started,
                finished_at=None if failed else started,
                failed_at=started if failed else None,
            )
        )
        db.session.commit()


def test_status_says_when_each_job_ran_and_fails_when_one_is_overdue(app, runner):
    result = runner.invoke(args=["jobs", "status"])
    assert result.exit_code == 0, result.output  # nothing scheduled yet: nothing overdue
    assert "credits.grant_due" in result.output and "never" in result.output
    now = utcnow()
    for entry in SCHEDULES:
        record(app, entry.job, now - timedelta(seconds=5))
    assert runner.invoke(args=["jobs", "status"]).exit_code == 0
    # The mail job's runs fail for longer than three of its slots: overdue.
    record(app, "mail.deliver_due", now - timedelta(hours=1))
    with app.app_context():
        db.session.execute(
            JobRun.__table__.delete().where(
                JobRun.job == "mail.deliver_due", JobRun.started_at > now - timedelta(minutes=1)
            )
        )
        db.session.commit()
    record(app, "mail.deliver_due", now, failed=True)
    result = runner.invoke(args=["jobs", "status"])
    assert result.exit_code == 1
    assert "overdue: mail.deliver_due" in result.output
    with app.app_context():
        statuses = {s.job: s for s in job_statuses()}
    assert statuses["mail.deliver_due"].overdue and statuses["mail.deliver_due"].last_failed
    assert not statuses["credits.grant_due"].overdue


@pytest.mark.parametrize("config_overrides", [{"JOBS_BROKER_URL": "redis://127.0.0.1:1/0"}])
def test_readyz_fails_naming_the_overdue_job_when_a_broker_is_configured(app, client):
    assert client.get("/readyz").get_json()["checks"]["jobs"] == "ok"
    record(app, "credits.grant_due", utcnow() - timedelta(days=1))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["jobs"].startswith("overdue: ")
    assert "stripe.reconcile_events" in response.get_json()["checks"]["jobs"]


def test_without_a_broker_readyz_leaves_the_schedules_out(app, client):
    record(app, "credits.grant_due", utcnow() - timedelta(days=1))
    response = client.get("/readyz")
    assert "jobs" not in response.get_json()["checks"]


def test_jobs_run_and_run_due(app, runner):
    result = runner.invoke(args=["jobs", "run", "cleanup.expired_rows"])
    assert result.exit_code == 0, result.output
    assert "checkouts marked expired" in result.output
    unknown = runner.invoke(args=["jobs", "run", "nope"])
    assert unknown.exit_code == 2 and "no job named 'nope'" in unknown.output
    first = runner.invoke(args=["jobs", "run-due"])
    assert first.exit_code == 0, first.output
    assert runner.invoke(args=["jobs", "run-due"]).output == ""  # every slot taken already
    with app.app_context():
        runs = db.session.scalar(select(func.count()).select_from(JobRun))
    assert runs == len(SCHEDULES) + 1  # one per job's slot, plus the manual run
