"""Command-line tools: `flask --app wsgi <group> <command>`."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import select

from webapp import stripe_gateway
from webapp.admin.commands import copy_cli
from webapp.auth.passwords import password_problem
from webapp.extensions import db
from webapp.models import Role, User
from webapp.models.user import normalise_email
from webapp.stripe_catalog import stripe_cli

users_cli = AppGroup("users", help="Manage user accounts.")


@users_cli.command("create")
@click.option("--email", required=True)
@click.option("--password", required=True, help="At least 10 characters, not a common one.")
@click.option("--role", type=click.Choice([role.value for role in Role]), default=Role.USER.value)
def create_user(email: str, password: str, role: str) -> None:
    """Create a user (or fail if the email is taken)."""
    email = normalise_email(email)
    if "@" not in email:
        raise click.BadParameter("not an email address", param_hint="--email")
    problem = password_problem(password, email=email)
    if problem:
        raise click.BadParameter(problem, param_hint="--password")
    if db.session.scalar(select(User.id).where(User.email == email)) is not None:
        raise click.ClickException(f"a user with email {email} already exists")
    user = User(email=email, role=role)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    click.echo(f"created user {user.id} <{email}> with role {role}")


webhooks_cli = AppGroup("webhooks", help="Inspect and re-process Stripe webhook events.")


@webhooks_cli.command("replay")
@click.argument("event_id", required=False)
@click.option("--failed", is_flag=True, help="Re-process every event whose processing failed.")
def replay_events(event_id: str | None, failed: bool) -> None:
    """Re-process EVENT_ID (or every failed event) from the event ledger."""
    from webapp import billing

    if bool(event_id) == failed:
        raise click.UsageError("give either an EVENT_ID or --failed")
    event_ids = billing.failed_event_ids() if failed else [event_id]
    problems = 0
    for current in event_ids:
        try:
            outcome = billing.replay_event(current)
        except LookupError as exc:
            raise click.ClickException(str(exc)) from None
        problems += outcome.status == "failed"
        click.echo(
            f"{current}: {outcome.status}" + (f" ({outcome.error})" if outcome.error else "")
        )
    if not event_ids:
        click.echo("no failed events")
    if problems:
        raise click.ClickException(f"{problems} event(s) failed again")


credits_cli = AppGroup("credits", help="The credits ledger.")


@credits_cli.command("grant-due")
def grant_due() -> None:
    """Grant the monthly credits due to yearly subscribers (idempotent; run it hourly)."""
    from webapp import billing

    run = billing.grant_due_credits()
    click.echo(f"wrote {run.written} credit entr{'y' if run.written == 1 else 'ies'}")
    if run.failed:
        raise click.ClickException(
            f"{len(run.failed)} subscription(s) failed (see the log): {', '.join(run.failed)}"
        )


def init_app(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(stripe_cli)
    app.cli.add_command(stripe_gateway.sandbox_cli())
    app.cli.add_command(copy_cli)
    app.cli.add_command(webhooks_cli)
    app.cli.add_command(credits_cli)
