"""Getting back in: "forgot password" and the reset link; verifying an address after sign-up.

**No enumeration.** "Forgot password" answers every valid request the same way: one budget spent
per client address and per address typed (known or not), the same 303 to the same page, after
the same work (the reset mail is rendered for an unknown address too, then dropped), and no
sooner than ANSWER_SECONDS after the request began. Only a known, usable account gets the mail;
the remaining difference (its outbox row and, in development, its delivery) fits inside that
floor, so the time to answer does not depend on the address.

**Reset links** are single-use and expire (webapp/auth/tokens.py). A click on the mailed link
moves the token into the session and redirects to a URL without it, so the page that asks for
the new password (and everything it loads or links to) never carries the token in its address
or a Referer. Setting the password ends every session and access token of the account
(`sessions.change_password`), marks the address verified (the link proved control of it), mails
a "your password was changed" notice and logs this browser in on a fresh session.

**Verification.** Sign-up mails a link; until it is used a banner on every page offers to send
it again. An unverified account may log in, pay and use its credits; creating API keys needs a
verified address (`webapp.api.keys.EmailNotVerified`).
"""

from __future__ import annotations

import logging
import time

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.wrappers import Response

from webapp.auth import mails, sessions, tokens
from webapp.auth.forms import EmptyForm, ForgotPasswordForm, NewPasswordForm
from webapp.auth.views import start_session
from webapp.database import lock_row
from webapp.extensions import db
from webapp.models import User
from webapp.models.base import utcnow
from webapp.models.user import normalise_email
from webapp.security import is_safe_next
from webapp.throttle import account_key, client_address, spend

bp = Blueprint("recovery", __name__)
log = logging.getLogger(__name__)

# The least time a "forgot password" answer takes, whatever the address: longer than the work
# of either branch (a few milliseconds to render and queue one mail), so both answer together.
ANSWER_SECONDS = 0.25
RESET_TOKEN_KEY = "password_reset_token"
RESET_SENT_KEY = "password_reset_sent_to"
# Our tokens are about 120 characters; anything much longer is not one of them, and would not
# fit in the session cookie.
MAX_TOKEN_LENGTH = 512


@bp.after_request
def keep_private(response: Response) -> Response:
    """These pages are one person's and may carry a token: never cached, never a Referer."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def can_recover(user: User | None) -> bool:
    """Whether the account may get or use a reset link: it exists, is not deleted or stopped."""
    return user is not None and user.deleted_at is None and user.deactivated_at is None


def link_problem(expired: bool, *, again: str = "reset") -> tuple[str, int]:
    """The page for a link that cannot be used: 410 if it was genuine (too old, used), else 400."""
    return render_template(
        "auth/link_problem.html", expired=expired, again=again
    ), 410 if expired else 400


@bp.route("/password/forgot", methods=["GET", "POST"])
def forgot_password() -> Response | tuple[str, int]:
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        started = time.monotonic()
        email = normalise_email(form.email.data or "")
        spend(
            ("PASSWORD_RESET_RATE_LIMIT", client_address()),
            ("PASSWORD_RESET_ACCOUNT_RATE_LIMIT", account_key(email)),
        )
        user = db.session.scalar(select(User).where(User.email == email))
        mails.password_reset(user if can_recover(user) else None, email)
        db.session.commit()
        session[RESET_SENT_KEY] = email
        time.sleep(max(0.0, started + ANSWER_SECONDS - time.monotonic()))
        return redirect(url_for("recovery.reset_sent"), code=303)
    return render_template("auth/forgot_password.html", form=form), 400 if form.errors else 200


@bp.get("/password/forgot/sent")
def reset_sent() -> Response | str:
    email = session.get(RESET_SENT_KEY)
    if not email:
        return redirect(url_for("recovery.forgot_password"), code=303)
    minutes = current_app.config["PASSWORD_RESET_MAX_AGE"] // 60
    return render_template("auth/reset_sent.html", email=email, minutes=minutes)


@bp.get("/password/reset/<token>")
def open_reset_link(token: str) -> Response | tuple[str, int]:
    """The mailed link: keep the token in the session and continue on a URL without it."""
    if len(token) > MAX_TOKEN_LENGTH:
        return link_problem(False)
    session[RESET_TOKEN_KEY] = token
    return redirect(url_for("recovery.reset_password"), code=303)


def _reset_user(token: str) -> User:
    """The account a reset token is for, as it is now; raises InvalidToken / ExpiredToken."""
    user_id, fingerprint = tokens.read_reset_token(token)
    user = db.session.get(User, user_id)
    if not can_recover(user):
        raise tokens.ExpiredToken(tokens.RESET)
    assert user is not None
    tokens.check_reset_fingerprint(user, fingerprint)
    return user


@bp.route("/password/reset", methods=["GET", "POST"])
def reset_password() -> Response | tuple[str, int]:
    token = session.get(RESET_TOKEN_KEY)
    if not isinstance(token, str):
        return link_problem(False)
    try:
        user = _reset_user(token)
    except tokens.InvalidToken as exc:
        return link_problem(isinstance(exc, tokens.ExpiredToken))
    form = NewPasswordForm()
    form.account_email = user.email
    if form.validate_on_submit():
        # Two submits of one link take turns; the second finds the fingerprint moved on.
        lock_row(User, user.id)
        db.session.refresh(user)
        try:
            tokens.check_reset_fingerprint(user, tokens.read_reset_token(token)[1])
        except tokens.InvalidToken:
            db.session.rollback()
            return link_problem(True)
        user.email_verified_at = user.email_verified_at or utcnow()
        mails.password_changed(user)
        sessions.change_password(user, form.new_password.data or "")  # commits the mail too
        start_session(user)  # a fresh session; the token goes with the old one
        log.info("user %s reset their password", user.id)
        flash(
            "Your password was changed. You are logged in here; every other session has ended.",
            "success",
        )
        return redirect(url_for("account.index"), code=303)
    status = 400 if form.errors else 200
    return render_template("auth/reset_password.html", form=form, email=user.email), status


@bp.get("/verify-email/<token>")
def verify_email(token: str) -> Response | tuple[str, int]:
    try:
        user_id, email = tokens.read_verify_token(token)
    except tokens.InvalidToken as exc:
        return link_problem(isinstance(exc, tokens.ExpiredToken), again="verify")
    user = db.session.get(User, user_id)
    if user is None or user.deleted_at is not None or user.email != email:
        # The account's address changed since the link was sent: it proves nothing now.
        return link_problem(True, again="verify")
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
        db.session.commit()
        log.info("user %s verified their address", user.id)
    if current_user.is_authenticated and current_user.id == user.id:
        flash(f"Thank you: {email} is verified.", "success")
        return redirect(url_for("account.index"), code=303)
    return render_template("auth/email_verified.html", email=email), 200


@bp.post("/verify-email/resend")
@login_required
def resend_verification() -> Response:
    if not EmptyForm().validate_on_submit():
        abort(400)
    spend(("VERIFY_EMAIL_RESEND_RATE_LIMIT", str(current_user.id)))
    user = current_user._get_current_object()
    if user.email_verified_at is not None:
        flash("Your email address is already verified.", "info")
    else:
        mails.verification(user)
        db.session.commit()
        flash(f"We sent a new verification link to {user.email}.", "info")
    next_url = request.form.get("next")
    return redirect(next_url if is_safe_next(next_url) else url_for("account.index"), code=303)
