"""The account page (plan, credits), the way into Stripe's billing portal, and the member's own
data: download it (`/account/data.json`) or delete the account (`/account/delete`)."""

from __future__ import annotations

import json
import logging

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, logout_user
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response

from webapp import billing, member_cache
from webapp.account.deletion import DeletionBusy, delete_account
from webapp.account.export import export_user_data
from webapp.account.forms import DeleteAccountForm, SwitchForm
from webapp.auth.forms import EmptyForm
from webapp.auth.limits import spend_login_attempt
from webapp.billing import switches, usage
from webapp.billing.company import company_details
from webapp.billing.history import PER_PAGE, history_status, invoice_history
from webapp.catalog import get_catalog
from webapp.countries import COUNTRIES
from webapp.extensions import db
from webapp.page_cache import (
    copy_version,
    render_with_csrf_placeholder,
    stamped_response,
)
from webapp.plan_copy import pack_offers, published_copy
from webapp.templating import format_date
from webapp.urls import public_url

bp = Blueprint("account", __name__)
log = logging.getLogger(__name__)


@bp.get("/account")
@login_required
def index() -> str | Response:
    if session.get("_flashes"):
        return render_account()  # flashes are per request: never cached
    # The page changes only with the member's rows (the member cache drops it then) and with
    # published plan names; the past-due grace period may end up to MEMBER_CACHE_SECONDS late.
    key = ("account page", copy_version(exact=current_user.is_editor))
    page = member_cache.cached(
        current_user.id, key, lambda: render_with_csrf_placeholder(render_account)
    )
    return stamped_response(page)


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
        # The newest few; the rest on /account/invoices. The member cache drops this page when
        # one of the member's invoices changes (it watches `invoices`).
        history=invoice_history(current_user.id, limit=ACCOUNT_PAGE_INVOICES),
        invoice_status=history_status,
        company=company_details(current_user.id),
        countries=COUNTRIES,
        form=EmptyForm(),
        packs=pack_offers(published_copy()),
    )


ACCOUNT_PAGE_INVOICES = 5


@bp.get("/account/invoices")
@login_required
def invoices() -> str:
    """The whole billing history, PER_PAGE invoices a page (`?page=2` is older)."""
    page = request.args.get("page", "1")
    if not page.isdigit() or not 1 <= int(page) <= 100_000:
        abort(404)
    history = invoice_history(current_user.id, limit=PER_PAGE, offset=(int(page) - 1) * PER_PAGE)
    if not history.invoices and int(page) > 1:
        abort(404)  # past the last page
    return render_template(
        "account/invoices.html",
        history=history,
        page=int(page),
        pages=max(1, -(-history.total // PER_PAGE)),
        invoice_status=history_status,
    )


CREDIT_FILTERS = {"purchase": "Purchases", "usage": "Usage", "refund": "Refunds"}
CREDIT_TYPE_LABELS = {"purchase": "Purchase", "usage": "Usage", "refund": "Refund"}


@bp.get("/account/credits")
@login_required
def credits() -> str:
    """The whole credits ledger, newest first, HISTORY_PER_PAGE entries a page (`?page=2` is
    older), of one type (`?type=usage`) or all: what GET /api/v1/credits/history answers."""
    page, entry_type = request.args.get("page", "1"), request.args.get("type") or None
    if not page.isdigit() or not 1 <= int(page) <= 100_000:
        abort(404)
    if entry_type is not None and entry_type not in CREDIT_FILTERS:
        abort(404)
    per_page = usage.HISTORY_PER_PAGE
    history = usage.credit_history(
        current_user.id, limit=per_page, offset=(int(page) - 1) * per_page, entry_type=entry_type
    )
    if not history.entries and int(page) > 1:
        abort(404)  # past the last page
    return render_template(
        "account/credits.html",
        history=history,
        page=int(page),
        pages=max(1, -(-history.total // per_page)),
        entry_type=entry_type,
        filters=CREDIT_FILTERS,
        type_labels=CREDIT_TYPE_LABELS,
        summary=billing.credit_summary(current_user.id, recent=0),
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
    return open_portal()


def open_portal() -> Response | tuple[str, int]:
    """Send the member to Stripe's billing portal, or to a page that says why not."""
    try:
        url = billing.create_portal_session(current_user, return_url=public_url("account.index"))
    except billing.NoBillingAccount:
        flash("You have no billing account yet. Choose a plan to get started.", "info")
        return redirect(url_for("account.index"), code=303)
    except billing.CatalogMismatch as exc:
        return render_template("errors/503.html", status=503, message=exc.message), 503
    except billing.PaymentProviderError as exc:
        log.warning("portal for user %s failed at the payment provider: %s", current_user.id, exc)
        return render_template("errors/502.html", status=502), 502
    return redirect(url, code=303)


# --- switching plan from the pricing page (webapp/billing/switches.py) ----------------------


@bp.get("/billing/switch")
@login_required
def switch() -> Response | str | tuple[str, int]:
    """What switching to ?plan=&cycle= costs, as Stripe previews it; nothing changes yet."""
    plan, cycle = request.args.get("plan", ""), request.args.get("cycle", "")
    try:
        terms = switches.switch_terms(current_user, plan, cycle)
    except switches.SwitchDone as exc:
        flash(exc.message, "info")
        return redirect(url_for("account.index"), code=303)
    except (switches.SwitchRefused, billing.BillingError, billing.PaymentProviderError) as exc:
        return _switch_failed(exc)
    return render_switch(terms)


@bp.post("/billing/switch")
@login_required
def confirm_switch() -> Response | tuple[str, int]:
    form = SwitchForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        terms = switches.confirm_switch(
            current_user,
            form.plan.data or "",
            form.cycle.data or "",
            proration_date=form.proration_date.data,
            shown_amount=form.amount.data or 0,
        )
    except switches.SwitchDone as exc:
        flash(exc.message, "info")
        return redirect(url_for("account.index"), code=303)
    except switches.SwitchStale as exc:
        return render_switch(exc.terms, notice=f"{exc.message} Please check it again."), 409
    except billing.CardDeclined as exc:
        message = exc.user_message or "Your card was declined."
        return _switch_failed(exc, message=f"{message} Nothing changed.", status=402)
    except (billing.BillingError, billing.PaymentProviderError) as exc:
        return _switch_failed(exc)
    name = f"{plan_name(terms.plan_id)} ({terms.cycle})"
    if terms.immediate:
        flash(f"Your plan is now {name}.", "success")
    else:
        flash(f"Your plan switches to {name} on {format_date(terms.starts_at)}.", "success")
    return redirect(url_for("account.index"), code=303)


def render_switch(terms: switches.SwitchTerms, notice: str | None = None) -> str:
    form = SwitchForm(
        formdata=None,  # the terms shown now, never the ones a stale form posted
        plan=terms.plan_id,
        cycle=terms.cycle,
        amount=terms.amount_now if terms.immediate else terms.renewal_amount,
        proration_date=terms.proration_date,
    )
    return render_template("account/switch.html", terms=terms, form=form, notice=notice)


def _switch_failed(
    exc: Exception, *, message: str | None = None, status: int | None = None
) -> tuple[str, int]:
    if isinstance(exc, billing.BillingError):
        message, status = message or exc.message, status or exc.status
    elif isinstance(exc, billing.PaymentProviderError) and status is None:
        log.warning("switch for user %s failed at the payment provider: %s", current_user.id, exc)
        return render_template("errors/502.html", status=502), 502
    return render_template("account/switch_refused.html", message=message), status or 400


# --- the member's own data ------------------------------------------------------------------


@bp.get("/account/data.json")
@login_required
def data_export() -> Response:
    """Everything we hold about the member, as a download (webapp/account/export.py)."""
    body = json.dumps(export_user_data(current_user), indent=2, sort_keys=False)
    response = Response(body + "\n", mimetype="application/json")
    response.headers["Content-Disposition"] = 'attachment; filename="llmgen-my-data.json"'
    response.headers["Cache-Control"] = "no-store"
    return response


STRIPE_FAILED = (
    "We could not reach our payment provider to cancel your plan, so nothing was deleted and "
    "nothing changed. Please try again in a minute."
)


LOCAL_FAILED = (
    "Any plan you had is cancelled, but deleting the account did not finish. Nothing else "
    "changed: please send the form again in a minute to finish it."
)


@bp.route("/account/delete", methods=["GET", "POST"])
@login_required
def delete() -> Response | tuple[str, int]:
    """What deleting does; then, given the current password and a tick, doing it."""
    form = DeleteAccountForm()
    if form.validate_on_submit():
        # A password check like the log-in page's, spending the same budgets (429 past them).
        spend_login_attempt(current_user.email)
        if not current_user.check_password(form.password.data):
            form.password.errors = ["That is not your current password."]
        else:
            return _delete_current_user(form)
    status = 400 if form.errors or form.form_errors else 200
    return render_delete_page(form), status


def _delete_current_user(form: DeleteAccountForm) -> Response | tuple[str, int]:
    user_id = current_user.id
    try:
        delete_account(user_id)
    except billing.PaymentProviderError as exc:
        log.warning("deleting account %s failed at the payment provider: %s", user_id, exc)
        return render_template("account/delete_failed.html", status=502, message=STRIPE_FAILED), 502
    except DeletionBusy as exc:
        form.form_errors.append(str(exc))
        return render_delete_page(form), 409
    except SQLAlchemyError:
        # Stripe is done (idempotently); the local half rolled back whole. Still logged in, the
        # person can send the form again, which finishes it.
        db.session.rollback()
        log.exception("deleting account %s failed after Stripe closed its billing", user_id)
        return render_template("account/delete_failed.html", status=503, message=LOCAL_FAILED), 503
    logout_user()
    session.clear()
    return redirect(url_for("account.deleted"), code=303)


def render_delete_page(form: DeleteAccountForm) -> str:
    subscription = billing.live_subscription(current_user.id)
    return render_template(
        "account/delete.html",
        form=form,
        subscription=subscription,
        plan=get_catalog().plan(subscription.plan_id) if subscription else None,
    )


@bp.get("/account/deleted")
def deleted() -> str:
    """Where a deletion lands: the person is logged out; nothing here depends on who they were."""
    return render_template("account/deleted.html")


def plan_name(plan_id: str) -> str:
    return published_copy().plan(plan_id)["name"]
