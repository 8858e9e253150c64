"""`flask mail …`: send a test message and run the delivery worker."""

from __future__ import annotations

import time
import uuid

import click
from email_validator import EmailNotValidError, validate_email
from flask.cli import AppGroup

from webapp.extensions import db
from webapp.mail.delivery import deliver_due
from webapp.mail.outbox import queue_mail

mail_cli = AppGroup("mail", help="The mail outbox: test messages and the delivery worker.")


@mail_cli.command("send-test")
@click.option("--to", "to", required=True, help="The address to send the test message to.")
def send_test(to: str) -> None:
    """Queue a test message to TO (delivered at once in development, else by the worker)."""
    try:
        address = validate_email(to, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise click.BadParameter(str(exc), param_hint="--to") from None
    queue_mail(address, "test", "A test message from LLMGen", f"test:{uuid.uuid4()}")
    db.session.commit()
    click.echo(f"queued a test message to {address}")


@mail_cli.command("deliver")
@click.option("--loop", is_flag=True, help="Keep delivering; run it beside gunicorn.")
@click.option("--interval", default=5.0, show_default=True, help="Seconds between rounds.")
@click.option("--limit", default=50, show_default=True, help="Messages per round at most.")
def deliver(loop: bool, interval: float, limit: int) -> None:
    """Send the messages that are due (once, or every INTERVAL seconds with --loop)."""
    while True:
        report = deliver_due(limit)
        if report.handled or not loop:
            click.echo(
                f"sent {len(report.sent)}, kept {len(report.kept)}, "
                f"retrying {len(report.retrying)}, failed {len(report.failed)}"
            )
        if not loop:
            return
        # A full round means more may be due: go again at once.
        if report.handled < limit:
            time.sleep(interval)
