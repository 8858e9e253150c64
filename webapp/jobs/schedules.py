"""The schedules: which job runs how often, run once per time slot across every worker host.

`SCHEDULES` is the table; adding a scheduled job is one line naming a job registered with
`@jobs.job` and its interval. Every worker started with `--beat` ticks every entry, sending the
task `jobs.scheduled` with the job's name at each slot boundary (slots are aligned to the
Unix epoch, so every host's beat agrees on them). That task claims the slot by inserting the
(job, slot) row of `job_runs` (INSERT … ON CONFLICT DO NOTHING): the host whose row went in runs
the job, every other host finds the row and does nothing.

Why a table row and not a PostgreSQL advisory lock: an advisory lock only keeps two runs from
overlapping; a second beat ticking after the first run finished would run the job again. The
row says "this slot is done" for ever, works the same on SQLite and PostgreSQL (and behind a
transaction-pooling PgBouncer, where session advisory locks do not hold), and is the record
`flask jobs status` and /readyz read: when each job last started, finished or failed.

A run that dies with its worker leaves its row started and never finished: the next slot runs
the job again (every job catches up on what earlier slots missed), and the job shows as
overdue until one finishes.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from celery.schedules import schedstate
from celery.schedules import schedule as celery_schedule
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError

from webapp.database import insert_or_ignore
from webapp.extensions import db
from webapp.models import JobRun
from webapp.models.base import utcnow

log = logging.getLogger(__name__)

SCHEDULED_TASK = "jobs.scheduled"
# A job is overdue when none of its runs finished within this many of its intervals (plus a
# margin for a busy queue): one missed slot is not yet an alarm, three are.
OVERDUE_INTERVALS = 3
OVERDUE_MARGIN = timedelta(minutes=5)
# How long the record of runs is kept.
KEEP_RUNS = timedelta(days=14)


@dataclass(frozen=True)
class Schedule:
    job: str  # a job registered with @jobs.job (webapp/jobs/scheduled.py, or any module)
    every: timedelta

    @property
    def overdue_after(self) -> timedelta:
        return self.every * OVERDUE_INTERVALS + OVERDUE_MARGIN


SCHEDULES: tuple[Schedule, ...] = (
    Schedule("credits.grant_due", timedelta(hours=1)),
    Schedule("stripe.reconcile_events", timedelta(minutes=15)),
    Schedule("stripe.resync_subscriptions", timedelta(hours=6)),
    Schedule("mail.deliver_due", timedelta(seconds=30)),
    Schedule("cleanup.expired_rows", timedelta(hours=6)),
    Schedule("webhooks.sweep", timedelta(minutes=5)),
)


def schedule_for(job: str) -> Schedule:
    for entry in SCHEDULES:
        if entry.job == job:
            return entry
    raise KeyError(job)


def slot_of(moment: datetime, every: timedelta) -> datetime:
    """The start of the slot `moment` falls in: slots of `every` from the Unix epoch."""
    seconds = int(every.total_seconds())
    start = int(moment.timestamp()) // seconds * seconds
    return datetime.fromtimestamp(start, UTC)


class AlignedSchedule(celery_schedule):
    """Due at each slot boundary (epoch-aligned), so every host's beat ticks for the same slot;
    a beat that was down does not tick for the slots it missed (the jobs catch up instead)."""

    def is_due(self, last_run_at: datetime) -> schedstate:
        now = self.now()
        every = self.run_every
        current = slot_of(now, every)
        next_in = (current + every - now).total_seconds()
        if self.maybe_make_aware(last_run_at) < current:
            return schedstate(True, next_in)
        return schedstate(False, next_in)


def beat_schedule(schedules: tuple[Schedule, ...] = SCHEDULES) -> dict[str, dict[str, Any]]:
    """Celery beat's table: every entry sends `jobs.scheduled` with its job's name."""
    return {
        entry.job: {
            "task": SCHEDULED_TASK,
            "schedule": AlignedSchedule(entry.every),
            "args": (entry.job,),
            # A tick nobody took within its slot is dropped: the next slot's tick does the work.
            "options": {"expires": entry.every.total_seconds()},
        }
        for entry in schedules
    }


def host_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:255]


@dataclass(frozen=True)
class RunResult:
    ran: bool
    summary: str


def run_in_slot(
    job: str, function: Callable[[], Any], *, slot: datetime | None = None, manual: bool = False
) -> RunResult:
    """Claim `job`'s current slot (or run now, `manual`) and run `function` if the claim won.

    The claim commits before the job starts, so another host sees it at once; the row then
    records how the run ended. The job's exception is recorded and re-raised.
    """
    now = utcnow()
    if slot is None:
        slot = now if manual else slot_of(now, schedule_for(job).every)
    row = {
        "job": job,
        "slot": slot,
        "trigger": "manual" if manual else "schedule",
        "host": host_name(),
        "started_at": now,
    }
    claimed = insert_or_ignore(JobRun, row, ["job", "slot"])
    db.session.commit()
    if not claimed:
        return RunResult(False, f"{job}: slot {slot.isoformat()} already claimed")
    try:
        outcome = function()
    except BaseException as exc:
        db.session.rollback()
        _finish(job, slot, failed=True, summary=f"{type(exc).__name__}: {exc}")
        raise
    summary = str(outcome) if outcome is not None else "done"
    _finish(job, slot, failed=False, summary=summary)
    return RunResult(True, summary)


def _finish(job: str, slot: datetime, *, failed: bool, summary: str) -> None:
    column = "failed_at" if failed else "finished_at"
    try:
        db.session.execute(
            update(JobRun)
            .where(JobRun.job == job, JobRun.slot == slot)
            .values({column: utcnow(), "summary": summary[:2000]})
        )
        db.session.commit()
    except SQLAlchemyError:
        db.session.rollback()
        log.exception("job %s: could not record how its run ended", job)


@dataclass(frozen=True)
class JobStatus:
    job: str
    every: timedelta
    last_started: datetime | None
    last_finished: datetime | None
    last_failed: datetime | None
    last_summary: str | None
    next_due: datetime
    overdue: bool


def job_statuses(now: datetime | None = None) -> list[JobStatus]:
    """Each scheduled job's last start, finish and failure, its next slot, and whether it is
    overdue: no run finished within `overdue_after`, counted from the last success or, for a
    job that never finished, from when the scheduler first ran anything."""
    now = now or utcnow()
    latest = {
        job: (started, finished, failed)
        for job, started, finished, failed in db.session.execute(
            select(
                JobRun.job,
                func.max(JobRun.started_at),
                func.max(JobRun.finished_at),
                func.max(JobRun.failed_at),
            ).group_by(JobRun.job)
        )
    }
    first_run = db.session.scalar(select(func.min(JobRun.started_at)))
    summaries = _last_summaries()
    db.session.commit()
    statuses = []
    for entry in SCHEDULES:
        started, finished, failed = latest.get(entry.job, (None, None, None))
        since = _aware(finished or first_run)
        overdue = since is not None and now - since > entry.overdue_after
        statuses.append(
            JobStatus(
                job=entry.job,
                every=entry.every,
                last_started=_aware(started),
                last_finished=_aware(finished),
                last_failed=_aware(failed),
                last_summary=summaries.get(entry.job),
                next_due=slot_of(now, entry.every) + entry.every,
                overdue=overdue,
            )
        )
    return statuses


def _last_summaries() -> dict[str, str | None]:
    newest = (
        select(JobRun.job, func.max(JobRun.started_at).label("started"))
        .group_by(JobRun.job)
        .subquery()
    )
    rows = db.session.execute(
        select(JobRun.job, JobRun.summary).join(
            newest, (JobRun.job == newest.c.job) & (JobRun.started_at == newest.c.started)
        )
    )
    return dict(rows.tuples().all())


def _aware(moment: datetime | None) -> datetime | None:
    # func.max() over a UTC column comes back without the column's type on SQLite.
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def delete_old_runs(keep: timedelta = KEEP_RUNS) -> int:
    """Forget runs older than `keep`, but never a job's newest (status reads it); how many."""
    cutoff = utcnow() - keep
    newest = select(func.max(JobRun.id)).group_by(JobRun.job)
    result = db.session.execute(
        delete(JobRun).where(JobRun.started_at < cutoff, JobRun.id.not_in(newest))
    )
    db.session.commit()
    return result.rowcount  # type: ignore[attr-defined]
