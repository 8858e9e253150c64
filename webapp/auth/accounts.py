"""Account use cases shared by the sign-up and log-in pages and the API: creating an account
and checking credentials. Pages and the API call these; neither imports the other's views."""

from __future__ import annotations

import logging
import secrets
from functools import cache

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from webapp.auth import mails
from webapp.auth.account_status import AccountDeactivated
from webapp.extensions import db
from webapp.models import User
from webapp.models.base import utcnow
from webapp.models.user import normalise_email

log = logging.getLogger(__name__)


def create_account(email: str, password: str) -> User | None:
    """Insert the user and queue the mail that verifies the address; if the address is taken,
    note the attempt for its owner instead (and return None).

    Both ways hash the password and write, so they take about the same time.
    """
    email = normalise_email(email)
    user = User(email=email)
    user.set_password(password)
    if db.session.scalar(select(User.id).where(User.email == email)) is not None:
        note_signup_attempt(email)
        return None
    db.session.add(user)
    try:
        db.session.flush()  # the id, for the link
        mails.verification(user)
        db.session.commit()
    except IntegrityError:
        # Two sign-ups raced for the same address; the unique index let only one through.
        db.session.rollback()
        note_signup_attempt(email)
        return None
    return user


def note_signup_attempt(email: str) -> None:
    """Tell the owner, on their account page, that someone tried to sign up as them."""
    db.session.execute(update(User).where(User.email == email).values(signup_attempted_at=utcnow()))
    db.session.commit()
    log.info("sign-up attempted with the address of an existing account")


@cache
def _dummy_hash(method: str) -> str:
    """Checked against when the email is unknown, so both failures take the same time."""
    return generate_password_hash(secrets.token_hex(16), method=method)


def authenticate(email: str, password: str) -> User | None:
    """The user these credentials name, or None; raises AccountDeactivated when they are right
    but the account is deactivated (checked after the password, so it reveals nothing more)."""
    user = db.session.scalar(select(User).where(User.email == normalise_email(email)))
    if user is None:
        check_password_hash(_dummy_hash(current_app.config["PASSWORD_HASH_METHOD"]), password)
        return None
    if not user.check_password(password):
        return None
    if user.deactivated_at is not None:
        raise AccountDeactivated(user.email)
    return user
