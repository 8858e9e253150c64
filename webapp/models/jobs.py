"""The schedules' record: one row per scheduled job per time slot.

Only `webapp.jobs.schedules` writes this table. The unique (job, slot) pair is the lock that makes
a scheduled job run once per slot however many worker hosts run the scheduler: each host's beat
tries to INSERT the slot's row, and only the one whose row went in runs the job.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import Model
from webapp.models.base import UTCDateTime, utcnow


class JobRun(Model):
    """One run of a scheduled job: the slot it was for, who ran it, how it ended."""

    __tablename__ = "job_runs"
    __table_args__ = (
        UniqueConstraint("job", "slot", name="uq_job_runs_job_slot"),
        # `flask jobs status` and /readyz read each job's newest runs.
        Index("ix_job_runs_job_started", "job", "started_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(100))
    # The start of the time slot this run is for (UTC, aligned to the schedule's interval), or
    # the moment of a manual run (`flask jobs run`).
    slot: Mapped[datetime] = mapped_column(UTCDateTime())
    # "schedule" or "manual".
    trigger: Mapped[str] = mapped_column(String(10), default="schedule")
    # The host and process that claimed the slot ("web-2:4711").
    host: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # What the job did ("wrote 3 credit entries"), or the exception it ended with.
    summary: Mapped[str | None] = mapped_column(Text)
