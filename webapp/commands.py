"""Command-line tools: `flask --app wsgi <group> <command>`."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import select

from webapp import billing, stripe_gateway
from webapp.account.deletion import DeletionBusy, delete_account
from webapp.admin.commands import copy_cli
from webapp.auth import account_status, sessions
from webapp.auth.passwords import password_problem
from webapp.extensions import db
from webapp.models import Role, Subscription, User
from webapp.models.base import utcnow
from webapp.models.user import normalise_email
from webapp.stripe_catalog import stripe_cli

users_cli = AppGroup(
    "users",
    help="Manage user accounts. Passwords are read from a prompt (or one line of stdin), "
    "never from the command line, where shell history and `ps` would keep them.",
)

ROLES = click.Choice([role.value for role in Role])


def _refuse_password_option(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """`--password` is kept only to say why it is gone (the value already sits in the shell's
    history, so the message says to change it)."""
    if value is not None:
        raise click.UsageError(
            "--password is not accepted: the password is read from a prompt, or from stdin when "
            "stdin is not a terminal (e.g. `printf '%s\\n' \"$PW\" | flask users create …`). "
            "Choose another password: this one is now in your shell history."
        )


_no_password_option = click.option(
    "--password", hidden=True, expose_value=False, callback=_refuse_password_option
)


def read_new_password(email: str) -> str:
    """A new password for `email`: prompted twice, hidden, on a terminal; otherwise the first
    line of stdin (for scripts). Held to the sign-up rules (`password_problem`)."""
    stdin = sys.stdin
    if stdin.isatty():

        def check(value: str) -> str:
            problem = password_problem(value, email=email)
            if problem:
                raise click.UsageError(problem)  # click says why and asks again
            return value

        return click.prompt(
            "New password", hide_input=True, confirmation_prompt=True, value_proc=check
        )
    password = stdin.readline().rstrip("\r\n")
    if not password:
        raise click.ClickException("no password given: write it as the first line of stdin")
    problem = password_problem(password, email=email)
    if problem:
        raise click.ClickException(problem)
    return password


def _user_by_email(email: str) -> User:
    user = db.session.scalar(select(User).where(User.email == normalise_email(email)))
    if user is None:
        raise click.ClickException(f"no user with email {normalise_email(email)}")
    return user


@users_cli.command("create")
@click.option("--email", required=True)
@click.option("--role", type=ROLES, default=Role.USER.value, show_default=True)
@_no_password_option
def create_user(email: str, role: str) -> None:
    """Create a user (or fail if the email is taken).

    The password (10+ characters, not an easily guessed one) is prompted for, or read from the
    first line of stdin when stdin is not a terminal.
    """
    email = normalise_email(email)
    if "@" not in email:
        raise click.BadParameter("not an email address", param_hint="--email")
    if db.session.scalar(select(User.id).where(User.email == email)) is not None:
        raise click.ClickException(f"a user with email {email} already exists")
    password = read_new_password(email)
    # An operator vouches for the address: no verification mail, and API keys may be created.
    user = User(email=email, role=role, email_verified_at=utcnow())
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    click.echo(f"created user {user.id} <{email}> with role {role}")


@users_cli.command("reset-password")
@click.option("--email", required=True)
@_no_password_option
def reset_password(email: str) -> None:
    """Set a new password and end every session and access token of the user.

    The password is prompted for, or read from the first line of stdin. API keys keep working
    (revoke them on the account page, or deactivate the account).
    """
    user = _user_by_email(email)
    sessions.change_password(user, read_new_password(user.email))
    click.echo(f"new password set for user {user.id} <{user.email}>; their sessions were ended")


@users_cli.command("set-role")
@click.option("--email", required=True)
@click.option("--role", type=ROLES, required=True)
def set_role(email: str, role: str) -> None:
    """Change a user's role (user, marketing or admin); lowering it ends their sessions."""
    user = _user_by_email(email)
    old_role = user.role
    if old_role == role:
        click.echo(f"user {user.id} <{user.email}> already has role {role}")
        return
    ended = account_status.set_role(user, role)
    click.echo(
        f"user {user.id} <{user.email}>: role {old_role} -> {role}"
        + ("; their sessions were ended" if ended else "")
    )


@users_cli.command("list")
@click.option("--role", type=ROLES, help="Only users with this role.")
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of a table.")
def list_users(role: str | None, as_json: bool) -> None:
    """List users: role, creation, verification, deactivation and subscription."""
    rows = user_rows(role)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        click.echo("no users")
    else:
        click.echo(format_table(rows))


def user_rows(role: str | None) -> list[dict[str, Any]]:
    """One dict per user (oldest first) with their latest subscription, for `users list`."""
    query = select(User).order_by(User.id)
    if role is not None:
        query = query.where(User.role == role)
    users = list(db.session.scalars(query))
    latest: dict[int, Subscription] = {}
    # Oldest first, so each user's latest subscription is the one left in the dict.
    for sub in db.session.scalars(
        select(Subscription).order_by(Subscription.created_at, Subscription.id)
    ):
        latest[sub.user_id] = sub
    return [_user_row(user, latest.get(user.id)) for user in users]


def _user_row(user: User, sub: Subscription | None) -> dict[str, Any]:
    def iso(moment: datetime | None) -> str | None:
        return moment.isoformat(timespec="seconds") if moment else None

    return {
        "id": user.id,
        "email": user.email,
        "role": user.role,
        "created": iso(user.created_at),
        "verified": iso(user.email_verified_at),
        "deactivated": iso(user.deactivated_at),
        "plan": f"{sub.plan_id}/{sub.cycle}" if sub else None,
        "status": sub.status if sub else None,
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    """Rows as aligned columns; dates to the minute, "-" for nothing."""

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        text = str(value)
        # ISO dates: "2026-11-29T04:43:27+00:00" reads as "2026-11-29 04:43".
        return text[:16].replace("T", " ") if text[:4].isdigit() and "T" in text else text

    headers = list(rows[0])
    table = [headers] + [[cell(row[name]) for name in headers] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(headers))]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in table
    )


@users_cli.command("deactivate")
@click.option("--email", required=True)
@click.option("--reactivate", is_flag=True, help="Let a deactivated account log in again.")
def deactivate_user(email: str, reactivate: bool) -> None:
    """Deactivate an account: it can no longer log in, use access tokens or API keys.

    Its sessions and tokens end and its API keys are revoked (reactivating does not restore
    them). Deactivation is not deletion: the data and any Stripe subscription are left as they
    are, so cancel the subscription separately if billing should stop.
    """
    user = _user_by_email(email)
    if reactivate:
        if user.deactivated_at is None:
            click.echo(f"user {user.id} <{user.email}> is not deactivated")
            return
        account_status.reactivate(user)
        click.echo(f"reactivated user {user.id} <{user.email}>")
        return
    revoked = account_status.deactivate(user)
    click.echo(
        f"deactivated user {user.id} <{user.email}>: sessions ended, "
        f"{revoked} API key{'' if revoked == 1 else 's'} revoked; "
        "any subscription is left as it is"
    )


@users_cli.command("delete")
@click.option("--email", required=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete_user(email: str, yes: bool) -> None:
    """Delete an account, as its owner can on /account/delete (the same code).

    Its subscriptions are cancelled at Stripe at once (no refund) and the Stripe customer is
    deleted; the row is anonymised, API keys revoked, sessions and tokens ended; invoices and
    the credits ledger stay as accounting records; one confirmation mail goes to the address.
    """
    user = _user_by_email(email)
    if not yes:
        click.confirm(
            f"Delete user {user.id} <{user.email}>: cancel any plan at Stripe now, without a "
            "refund, and anonymise the account? This cannot be undone",
            abort=True,
        )
    try:
        deletion = delete_account(user.id)
    except billing.PaymentProviderError as exc:
        raise click.ClickException(f"Stripe failed; nothing was deleted: {exc}") from None
    except DeletionBusy as exc:
        raise click.ClickException(str(exc)) from None
    cancelled = ", ".join(deletion.subscriptions_cancelled) or "none"
    click.echo(f"deleted user {user.id}; subscriptions cancelled at once: {cancelled}")


webhooks_cli = AppGroup("webhooks", help="Inspect and re-process Stripe webhook events.")


@webhooks_cli.command("replay")
@click.argument("event_id", required=False)
@click.option("--failed", is_flag=True, help="Re-process every event whose processing failed.")
def replay_events(event_id: str | None, failed: bool) -> None:
    """Re-process EVENT_ID (or every failed event) from the event ledger."""
    from webapp import billing

    if bool(event_id) == failed:
        raise click.UsageError("give either an EVENT_ID or --failed")
    event_ids = billing.failed_event_ids() if failed or event_id is None else [event_id]
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


@webhooks_cli.command("sweep")
@click.option(
    "--older-than",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds an event must have waited (default: WEBHOOK_SWEEP_AFTER_SECONDS).",
)
def sweep_events(older_than: float | None) -> None:
    """Queue again the events still waiting as received (processed now, without a broker)."""
    from webapp.webhooks.jobs import sweep_webhooks

    event_ids = sweep_webhooks(older_than)
    click.echo(f"queued {len(event_ids)} waiting event(s) again")


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
