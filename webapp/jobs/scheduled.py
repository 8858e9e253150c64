"""The scheduled jobs (their intervals are in schedules.SCHEDULES) and the task that runs them.

Each job is an ordinary registered job (`jobs.enqueue` or `flask jobs run NAME` run it now);
the beat sends `jobs.scheduled` with the name, which runs it at most once per slot.
"""

from __future__ import annotations

from datetime import UTC, datetime

from webapp import jobs
from webapp.jobs.schedules import SCHEDULED_TASK, SCHEDULES, RunResult, run_in_slot


@jobs.job(SCHEDULED_TASK)
def run_scheduled(name: str) -> str:
    """Beat's tick for `name`: run the job if this host wins its current slot."""
    function = jobs.registered_jobs()[name].function
    return run_in_slot(name, function).summary


def run_due() -> list[RunResult]:
    """Every scheduled job whose current slot nobody claimed yet, here and now: the schedules
    without a broker (`flask jobs run-due`, development)."""
    results = []
    for entry in SCHEDULES:
        function = jobs.registered_jobs()[entry.job].function
        results.append(run_in_slot(entry.job, function))
    return results


@jobs.job("credits.grant_due")
def grant_due_credits() -> str:
    """Monthly credits of yearly plans, every month begun since the last run (catch-up)."""
    from webapp import billing
    from webapp.stripe_gateway import get_gateway

    # Stripe's time: the sandbox's test clock moves the months our invoices were dated by.
    run = billing.grant_due_credits(datetime.fromtimestamp(get_gateway().now(), UTC))
    if run.failed:
        raise RuntimeError(f"monthly credits failed for {', '.join(run.failed)}")
    return f"wrote {run.written} credit entries"


@jobs.job("stripe.reconcile_events")
def reconcile_events() -> str:
    """Stripe's events the webhooks never brought us, through the ledger."""
    from webapp.billing.reconcile import reconcile_events as reconcile

    run = reconcile()
    if run.failed:
        raise RuntimeError(f"{run.summary()}: {', '.join(run.failed)}")
    return run.summary()


@jobs.job("stripe.resync_subscriptions")
def resync_subscriptions() -> str:
    """Every live subscription re-read from Stripe and applied, paced."""
    from webapp.billing.reconcile import resync_subscriptions as resync

    run = resync()
    if run.failed:
        raise RuntimeError(f"{run.summary()}: {', '.join(run.failed)}")
    return run.summary()


@jobs.job("mail.deliver_due")
def deliver_mail() -> str:
    """The outbox: every message that is due (in rounds of 50)."""
    from webapp.mail import deliver_due

    sent = kept = retrying = failed = 0
    while True:
        report = deliver_due(50)
        sent, kept = sent + len(report.sent), kept + len(report.kept)
        retrying, failed = retrying + len(report.retrying), failed + len(report.failed)
        if report.handled < 50:
            break
    return f"sent {sent}, kept {kept}, retrying {retrying}, failed {failed}"


@jobs.job("cleanup.expired_rows")
def delete_expired_rows() -> str:
    """Rows past their use: lapsed checkouts, dead refresh-token families, old leases and runs."""
    from webapp.api.refresh_tokens import delete_expired_families
    from webapp.billing.checkout import expire_lapsed_checkouts
    from webapp.billing.leases import delete_expired
    from webapp.jobs.schedules import delete_old_runs

    return (
        f"{expire_lapsed_checkouts()} checkouts marked expired, "
        f"{delete_expired_families()} refresh-token families, {delete_expired()} leases, "
        f"{delete_old_runs()} job runs deleted"
    )
