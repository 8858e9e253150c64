"""Mail preferences, the one-click unsubscribe, and the page a failed payment's mail links to."""

from __future__ import annotations

import logging

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from webapp.billing import emails
from webapp.billing.low_balance import plan_allowance
from webapp.emails.forms import PreferencesForm
from webapp.extensions import csrf, db
from webapp.models import User

bp = Blueprint("emails", __name__)
log = logging.getLogger(__name__)

KIND_NAMES = {"receipt": "receipts", "credits_low": "credits-low warnings"}


@bp.route("/account/notifications", methods=["GET", "POST"])
@login_required
def preferences() -> str | Response:
    user = db.session.get_one(User, current_user.id)
    allowance = plan_allowance(user.id)
    form = PreferencesForm(
        obj=None if request.method == "POST" else user, has_plan=allowance is not None
    )
    if request.method == "GET":
        percent = user.credits_low_percent
        form.credits_low_unit.data = "credits" if percent is None else "percent"
        form.credits_low_threshold.data = (
            emails.credits_low_threshold(user) if percent is None else percent
        )
    if form.validate_on_submit():
        for kind, column in emails.OPTIONAL_KINDS.items():
            emails.set_mail_wanted(user, kind, bool(getattr(form, column).data))
        # InputRequired: a number is there (0 turns the warning off).
        _save_threshold(user, form.unit, form.credits_low_threshold.data or 0)
        db.session.commit()
        flash("Your mail preferences are saved.", "success")
        return redirect(url_for("emails.preferences"), code=303)
    status = 400 if request.method == "POST" else 200
    page = render_template(
        "emails/preferences.html",
        form=form,
        balance=emails.credit_balance(user.id),
        allowance=allowance,
        threshold=emails.credits_low_threshold(user),
    )
    return page if status == 200 else (page, status)  # type: ignore[return-value]


def _save_threshold(user: User, unit: str, value: int) -> None:
    if unit == "percent":
        user.credits_low_percent = value  # credits_low_threshold kept for a switch back
    else:
        user.credits_low_percent, user.credits_low_threshold = None, value
    # A new threshold is not a crossing: below it already, the next crossing is told.
    user.credits_low_notified = emails.credit_balance(user.id) < emails.credits_low_threshold(user)


@bp.route("/emails/unsubscribe/<token>", methods=["GET", "POST"])
@csrf.exempt  # RFC 8058: the mail client posts "List-Unsubscribe=One-Click", with no token of ours
def unsubscribe(token: str) -> str | tuple[str, int]:
    """GET asks (link scanners fetch links); POST, from the page or the mail client, does it."""
    found = emails.read_unsubscribe_token(token)
    user = db.session.get(User, found[0]) if found else None
    if found is None or user is None:
        return render_template("emails/unsubscribe.html", invalid=True), 404
    kind = found[1]
    if request.method == "POST":
        emails.set_mail_wanted(user, kind, False)
        db.session.commit()
        log.info("user %s unsubscribed from %s mail", user.id, kind)
    return render_template(
        "emails/unsubscribe.html",
        invalid=False,
        done=request.method == "POST" or not getattr(user, emails.OPTIONAL_KINDS[kind]),
        what=KIND_NAMES[kind],
    )


@bp.get("/billing/update-card")
@login_required
def update_card() -> Response | tuple[str, int]:
    """Where billing mails send people to fix a payment: Stripe's portal, opened at once.

    A GET (it is a link in a mail): a portal session is short-lived and changes nothing.
    """
    from webapp.account.views import open_portal

    return open_portal()
