"""The account page (plan, credits) and the way into Stripe's billing portal."""

from __future__ import annotations

import logging

from flask import Blueprint, abort, flash, redirect, render_template, session, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from webapp import billing, member_cache
from webapp.auth.forms import EmptyForm
from webapp.catalog import get_catalog
from webapp.extensions import db
from webapp.page_cache import copy_version, render_with_csrf_placeholder, stamp_csrf
from webapp.stripe_gateway import PaymentProviderError
from webapp.urls import public_url

bp = Blueprint("account", __name__)
log = logging.getLogger(__name__)


@bp.get("/account")
@login_required
def index() -> str:
    if session.get("_flashes"):
        return render_account()  # flashes are per request: never cached
    # The page changes only with the member's rows (the member cache drops it then) and with
    # published plan names; the past-due grace period may end up to MEMBER_CACHE_SECONDS late.
    key = ("account page", copy_version(exact=current_user.is_editor))
    page = member_cache.cached(
        current_user.id, key, lambda: render_with_csrf_placeholder(render_account)
    )
    return stamp_csrf(page)


def render_account() -> str:
    # The live one if there is one: a duplicate cancelled after it may be newer.
    subscription = billing.live_subscription(current_user.id) or billing.latest_subscription(
        current_user.id
    )
    plan = get_catalog().plan(subscription.plan_id) if subscription else None
    return render_template(
        "account/index.html",
        user=current_user,
        subscription=subscription,
        plan=plan,
        has_access=billing.has_access(subscription),
        credits=billing.credit_summary(current_user.id),
        duplicates=billing.recent_duplicates(current_user.id),
        form=EmptyForm(),
    )


@bp.post("/account/signup-notice")
@login_required
def dismiss_signup_notice() -> Response:
    """The owner has read that someone tried to sign up with their address."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    current_user.signup_attempted_at = None
    db.session.commit()
    return redirect(url_for("account.index"), code=303)


@bp.post("/billing/portal")
@login_required
def portal() -> Response | tuple[str, int]:
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        url = billing.create_portal_session(current_user, return_url=public_url("account.index"))
    except billing.NoBillingAccount:
        flash("You have no billing account yet. Choose a plan to get started.", "info")
        return redirect(url_for("account.index"), code=303)
    except billing.CatalogMismatch as exc:
        return render_template("errors/503.html", status=503, message=exc.message), 503
    except PaymentProviderError as exc:
        log.warning("portal for user %s failed at the payment provider: %s", current_user.id, exc)
        return render_template("errors/502.html", status=502), 502
    return redirect(url, code=303)
