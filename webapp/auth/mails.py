"""The mail of account recovery and control, queued in the caller's transaction (the caller
commits, so a message exists exactly when what it reports was committed).

Templates: `templates/email/<name>.html` + `.txt`; every link is absolute (`public_url`).
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import current_app

from webapp.auth import tokens
from webapp.mail import queue_mail, render_mail
from webapp.models import User
from webapp.urls import public_url

RESET_SUBJECT = "Reset your LLMGen password"
VERIFY_SUBJECT = "Verify your email address for LLMGen"
PASSWORD_CHANGED_SUBJECT = "Your LLMGen password was changed"
CHANGE_CONFIRM_SUBJECT = "Confirm your new email address for LLMGen"
CHANGE_REQUESTED_SUBJECT = "A change of your LLMGen email address was requested"
CHANGED_SUBJECT = "Your LLMGen email address was changed"


def _event_key(kind: str, user: User) -> str:
    """A dedupe key per message: each is caused by one request, which is never replayed (two
    requests in the same second may mail the same link twice; both work)."""
    return f"{kind}:{user.id}:{secrets.token_hex(8)}"


def _minutes(setting: str) -> int:
    return current_app.config[setting] // 60


def password_reset(user: User | None, email: str) -> None:
    """Queue a reset link for `user`. For no user, render the same mail for `email` and drop it:
    both answers to "forgot password" do the same work up to the outbox row."""
    if user is None:
        # A stand-in that is never added to the session; its token is as long as a real one.
        user = User(id=0, email=email, password_hash="", session_version=0)
        token = tokens.reset_token(user)
        render_mail("password_reset", RESET_SUBJECT, **_reset_context(user, token))
        return
    token = tokens.reset_token(user)
    queue_mail(
        user.email,
        "password_reset",
        RESET_SUBJECT,
        _event_key("password-reset", user),
        **_reset_context(user, token),
    )


def _reset_context(user: User, token: str) -> dict[str, Any]:
    return {
        "email": user.email,
        "link": public_url("recovery.open_reset_link", token=token),
        "minutes": _minutes("PASSWORD_RESET_MAX_AGE"),
    }


def verification(user: User) -> None:
    """Queue a link that proves `user` controls their current address."""
    token = tokens.verify_token(user)
    queue_mail(
        user.email,
        "verify_email",
        VERIFY_SUBJECT,
        _event_key("verify-email", user),
        email=user.email,
        link=public_url("recovery.verify_email", token=token),
        days=current_app.config["EMAIL_VERIFY_MAX_AGE"] // 86400,
    )


def password_changed(user: User) -> None:
    """Tell the owner their password changed, with the way back in if it was not them."""
    queue_mail(
        user.email,
        "password_changed",
        PASSWORD_CHANGED_SUBJECT,
        _event_key("password-changed", user),
        email=user.email,
        reset_link=public_url("recovery.forgot_password"),
    )


def change_hours() -> int:
    return current_app.config["EMAIL_CHANGE_MAX_AGE"] // 3600


def email_change_confirm(user: User, new_email: str, *, send: bool) -> None:
    """Queue, to `new_email`, the link that moves the account there. With `send=False` (the
    address belongs to another account) render the same mail and drop it."""
    token = tokens.change_email_token(user, new_email)
    context: dict[str, Any] = {
        "old_email": user.email,
        "new_email": new_email,
        "link": public_url("account_security.confirm_email_change", token=token),
        "hours": change_hours(),
    }
    if not send:
        render_mail("email_change_confirm", CHANGE_CONFIRM_SUBJECT, **context)
        return
    queue_mail(
        new_email,
        "email_change_confirm",
        CHANGE_CONFIRM_SUBJECT,
        _event_key("change-email", user),
        **context,
    )


def email_change_notice(user: User, old_email: str, new_email: str, *, done: bool) -> None:
    """Tell the old address a change to `new_email` was asked for (`done=False`) or made."""
    queue_mail(
        old_email,
        "email_changed_notice",
        CHANGED_SUBJECT if done else CHANGE_REQUESTED_SUBJECT,
        _event_key("email-changed" if done else "email-change-requested", user),
        old_email=old_email,
        new_email=new_email,
        done=done,
        reset_link=public_url("recovery.forgot_password"),
    )
