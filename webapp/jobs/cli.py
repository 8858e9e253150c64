"""`flask jobs …`: the schedules' state, and running jobs by hand."""

from __future__ import annotations

import os
import shutil
import sys
import time
from datetime import datetime

import click
from flask import current_app
from flask.cli import AppGroup

from webapp import jobs
from webapp.jobs.schedules import job_statuses, run_in_slot

jobs_cli = AppGroup("jobs", help="Background jobs: their schedules, and running one now.")


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "never"


@jobs_cli.command("status")
def status() -> None:
    """Each scheduled job's last run and next slot; exits 1 when one is overdue."""
    statuses = job_statuses()
    header = ("job", "every", "last started", "last finished", "last failed", "next due", "")
    rows = [
        (
            s.job,
            str(s.every),
            _when(s.last_started),
            _when(s.last_finished),
            _when(s.last_failed),
            _when(s.next_due),
            "OVERDUE" if s.overdue else "ok",
        )
        for s in statuses
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    overdue = [s.job for s in statuses if s.overdue]
    if overdue:
        raise click.ClickException(f"overdue: {', '.join(overdue)}")


@jobs_cli.command("run")
@click.argument("name")
def run(name: str) -> None:
    """Run the job NAME here and now (recorded as a manual run)."""
    registered = jobs.registered_jobs()
    if name not in registered or name == "jobs.scheduled":
        known = ", ".join(sorted(n for n in registered if n != "jobs.scheduled"))
        raise click.UsageError(f"no job named {name!r}; one of: {known}")
    try:
        result = run_in_slot(name, registered[name].function, manual=True)
    except Exception as exc:
        raise click.ClickException(f"{name} failed: {type(exc).__name__}: {exc}") from None
    click.echo(f"{name}: {result.summary}")


@jobs_cli.command("run-due")
@click.option("--loop", is_flag=True, help="Keep running the schedules (development).")
@click.option("--interval", default=15.0, show_default=True, help="Seconds between rounds.")
def run_due(loop: bool, interval: float) -> None:
    """Run every scheduled job whose current slot has not run yet: the schedules without a
    broker. With a broker, a worker started with --beat does this."""
    from webapp.jobs.scheduled import run_due as run_all_due

    while True:
        for result in run_all_due():
            if result.ran:
                click.echo(result.summary)
        if not loop:
            return
        time.sleep(interval)


@jobs_cli.command(
    "worker", context_settings={"ignore_unknown_options": True, "allow_extra_args": True}
)
@click.pass_context
def worker(ctx: click.Context) -> None:
    """Start a Celery worker with its scheduler (beat); extra options go to celery."""
    if not current_app.config["JOBS_BROKER_URL"]:
        raise click.ClickException(
            "JOBS_BROKER_URL is not set: without a broker jobs run in-process when queued; "
            "run the schedules with `flask jobs run-due --loop`"
        )
    celery = shutil.which("celery", path=os.path.dirname(sys.executable)) or "celery"
    argv = [celery, "-A", "webapp.jobs.worker", "worker", "--beat", *ctx.args]
    os.execv(celery, argv)  # noqa: S606 (our own venv's celery, no shell)
