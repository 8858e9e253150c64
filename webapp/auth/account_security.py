"""Sign-in and security on the account page: change the password, change the email address.

Both ask for the current password and spend the log-in page's password-check budgets
(`spend_login_attempt`), so a stolen session cannot guess its way to the account for good.

- **Password**: the new one follows the sign-up rules; every other session and access token
  ends (`sessions.change_password`), this browser stays logged in, the address gets a notice.
- **Email**: a link goes to the new address (it binds the user, the old and the new address and
  expires); the old address is told at once, and again when the change is made. The requester
  is answered the same way when the new address belongs to another account: that link is never
  sent, and a confirmation can never take an address another account has (the unique index is
  the final guard).
"""

from __future__ import annotations

import logging

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user, login_required, login_user
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from webapp.auth import mails, sessions, tokens
from webapp.auth.forms import ChangeEmailForm, ChangePasswordForm
from webapp.auth.limits import spend_login_attempt
from webapp.auth.recovery import link_problem
from webapp.database import lock_row
from webapp.extensions import db
from webapp.models import User
from webapp.models.base import utcnow
from webapp.models.user import normalise_email

bp = Blueprint("account_security", __name__, url_prefix="/account")
log = logging.getLogger(__name__)

WRONG_PASSWORD = "That is not your current password."


@bp.after_request
def keep_private(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _password_is_right(user: User, password: str) -> bool:
    # The same budgets as the log-in page: this is a password check too.
    spend_login_attempt(user.email)
    return user.check_password(password)


@bp.route("/password", methods=["GET", "POST"])
@login_required
def change_password() -> Response | tuple[str, int]:
    user: User = current_user._get_current_object()
    form = ChangePasswordForm()
    form.account_email = user.email
    if form.validate_on_submit():
        if not _password_is_right(user, form.current_password.data or ""):
            form.current_password.errors = [WRONG_PASSWORD]
        else:
            mails.password_changed(user)
            sessions.change_password(user, form.new_password.data or "")  # commits the mail too
            login_user(user)  # this browser, at the new session version; all others end
            log.info("user %s changed their password", user.id)
            flash("Your password was changed. Every other session has ended.", "success")
            return redirect(url_for("account.index"), code=303)
    status = 400 if form.errors else 200
    return render_template("auth/change_password.html", form=form), status


@bp.route("/email", methods=["GET", "POST"])
@login_required
def change_email() -> Response | tuple[str, int]:
    user: User = current_user._get_current_object()
    form = ChangeEmailForm()
    if form.validate_on_submit():
        new_email = normalise_email(form.new_email.data or "")
        if not _password_is_right(user, form.password.data or ""):
            form.password.errors = [WRONG_PASSWORD]
        elif new_email == user.email:
            form.new_email.errors = ["That is already your email address."]
        else:
            taken = db.session.scalar(select(User.id).where(User.email == new_email))
            # Either way the same mail is rendered; only a free address is sent the link.
            mails.email_change_confirm(user, new_email, send=taken is None)
            mails.email_change_notice(user, user.email, new_email, done=False)
            db.session.commit()
            flash(
                f"We sent a link to {new_email}. Open it within "
                f"{mails.change_hours()} hours to switch; until then your address stays "
                f"{user.email}.",
                "info",
            )
            return redirect(url_for("account.index"), code=303)
    status = 400 if form.errors else 200
    return render_template("auth/change_email.html", form=form), status


@bp.get("/email/confirm/<token>")
def confirm_email_change(token: str) -> Response | tuple[str, int]:
    try:
        change = tokens.read_change_email_token(token)
    except tokens.InvalidToken as exc:
        return link_problem(isinstance(exc, tokens.ExpiredToken), again="email")
    # Two clicks of one link take turns; the second finds the address already moved.
    lock_row(User, change.user_id)
    user = db.session.get(User, change.user_id, populate_existing=True)
    try:
        if user is None or user.deleted_at is not None or user.deactivated_at is not None:
            raise tokens.ExpiredToken(tokens.CHANGE_EMAIL)
        change.check(user)
    except tokens.ExpiredToken:
        db.session.rollback()
        return link_problem(True, again="email")
    try:
        user.email = change.new
        user.email_verified_at = utcnow()
        mails.email_change_notice(user, change.old, change.new, done=True)
        db.session.commit()
    except IntegrityError:
        # The new address belongs to another account (taken before or since the request).
        db.session.rollback()
        return render_template("auth/email_taken.html", email=change.new), 409
    log.info("user %s changed their email address", user.id)
    if current_user.is_authenticated and current_user.id == user.id:
        flash(f"Your email address is now {change.new}.", "success")
        return redirect(url_for("account.index"), code=303)
    return render_template("auth/email_changed.html", email=change.new), 200
