"""Checkout: start a Stripe Checkout Session, and the pages Stripe sends the buyer back to."""

from __future__ import annotations

import logging

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from webapp import billing
from webapp.billing.trials import trial_days_for
from webapp.catalog import CYCLES, UnknownPack, UnknownPlan, get_catalog, get_checkout_options
from webapp.checkout.forms import CheckoutForm, PackCheckoutForm
from webapp.urls import public_url

bp = Blueprint("checkout", __name__, url_prefix="/checkout")
log = logging.getLogger(__name__)

# The processing page refreshes itself this many times (every 2 s) before giving up politely.
MAX_SUCCESS_REFRESHES = 15


def success_url() -> str:
    # Stripe fills in {CHECKOUT_SESSION_ID}; url_for would percent-encode the braces.
    return public_url("checkout.success") + "?session_id={CHECKOUT_SESSION_ID}"


def begin_checkout(plan_id: str, cycle: str) -> Response | tuple[str, int]:
    """Send the logged-in user to Stripe Checkout for a plan, or explain why not."""
    try:
        started = billing.start_checkout(
            current_user,
            plan_id,
            cycle,
            success_url=success_url(),
            cancel_url=public_url("checkout.cancel", plan=plan_id, cycle=cycle),
        )
    except UnknownPlan:
        return render_template("checkout/unknown_plan.html"), 400
    except billing.SubscriptionExists:
        flash("You already have a plan. Use Manage billing to switch or cancel.", "info")
        return redirect(url_for("account.index"), code=303)
    except billing.CheckoutBusy:
        flash("Your checkout is already being prepared in another tab. Please try again.", "info")
        return redirect(url_for("pricing.index", plan=plan_id, cycle=cycle), code=303)
    except billing.CatalogMismatch as exc:
        return render_template("errors/503.html", status=503, message=exc.message), 503
    except billing.PaymentProviderError as exc:
        log.warning("checkout for user %s failed at the payment provider: %s", current_user.id, exc)
        return render_template("errors/502.html", status=502), 502
    return redirect(started.url, code=303)


def confirm_checkout(plan_id: str, cycle: str) -> Response | str:
    """What a logged-in member sees after following a link that names a plan: a button.

    Following a link is a GET, which any other site can make a browser send; only the button's
    POST, carrying the member's CSRF token, may create a Stripe session (and expire an open one).
    """
    if billing.live_subscription(current_user.id) is not None:
        flash("You already have a plan. Use Manage billing to switch or cancel.", "info")
        return redirect(url_for("account.index"), code=303)
    plan = get_catalog().plan(plan_id)
    return render_template(
        "checkout/confirm.html",
        form=CheckoutForm(plan=plan_id, cycle=cycle),
        plan_id=plan_id,
        cycle=cycle,
        price_cents=plan.price(cycle).amount_cents,
        trial_days=trial_days_for(current_user.id, plan),
    )


@bp.app_template_global()
def checkout_asks_consent() -> bool:
    """Whether Checkout will ask the buyer to agree to the terms (the pages before it say so)."""
    return get_checkout_options().consent_collection


@bp.post("")
@login_required
def start() -> Response | tuple[str, int]:
    form = CheckoutForm()
    if not form.validate_on_submit():
        abort(400)
    if form.cycle.data not in CYCLES:
        return render_template("checkout/unknown_plan.html"), 400
    return begin_checkout(form.plan.data or "", form.cycle.data)


def _success_args() -> tuple[str, int]:
    """The session id (404 unless it looks like one) and the page's own refresh count."""
    session_id = request.args.get("session_id", "")
    refreshes = request.args.get("refresh", "0")
    if not session_id.startswith("cs_") or len(session_id) > 255:
        abort(404)
    return session_id, int(refreshes) if refreshes.isdigit() else 0


@bp.get("/success")
@login_required
def success() -> str | tuple[str, int]:
    session_id, refreshes = _success_args()
    try:
        result = billing.fulfil_checkout(session_id, user_id=current_user.id)
    except billing.CheckoutNotFound:
        abort(404)
    except billing.PaymentProviderError as exc:
        log.warning("success page for %s: payment provider error: %s", session_id, exc)
        return render_template("errors/502.html", status=502), 502
    if result.status in ("complete", "duplicate"):
        return render_template("checkout/success.html", result=result)
    if result.status in ("processing", "open") and refreshes < MAX_SUCCESS_REFRESHES:
        next_url = url_for("checkout.success", session_id=session_id, refresh=refreshes + 1)
        return render_template("checkout/processing.html", result=result, refresh_url=next_url)
    return render_template("checkout/processing.html", result=result, refresh_url=None)


# --- credit packs (billing/packs.py) -------------------------------------------------------------


@bp.post("/pack")
@login_required
def start_pack() -> Response | tuple[str, int]:
    """ "Buy" on a credit pack: Stripe Checkout for it. No subscription needed."""
    form = PackCheckoutForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        started = billing.start_pack_checkout(
            current_user,
            form.pack.data,
            success_url=public_url("checkout.pack_success") + "?session_id={CHECKOUT_SESSION_ID}",
            cancel_url=public_url("account.index", credits="canceled"),
        )
    except UnknownPack:
        return render_template("checkout/unknown_pack.html"), 400
    except billing.CheckoutBusy:
        flash("Your checkout is already being prepared in another tab. Please try again.", "info")
        return redirect(url_for("account.index"), code=303)
    except billing.CatalogMismatch as exc:
        return render_template("errors/503.html", status=503, message=exc.message), 503
    except billing.PaymentProviderError as exc:
        log.warning("pack checkout for user %s failed: %s", current_user.id, exc)
        return render_template("errors/502.html", status=502), 502
    return redirect(started.url, code=303)


@bp.get("/pack/success")
@login_required
def pack_success() -> str | tuple[str, int]:
    """Where Stripe sends a pack's buyer: fulfils as the webhook does, and says so."""
    session_id, refreshes = _success_args()
    try:
        result = billing.fulfil_pack_checkout(session_id, user_id=current_user.id)
    except billing.CheckoutNotFound:
        abort(404)
    except billing.PaymentProviderError as exc:
        log.warning("pack success page for %s: payment provider error: %s", session_id, exc)
        return render_template("errors/502.html", status=502), 502
    refresh_url = None
    if result.status in ("processing", "open") and refreshes < MAX_SUCCESS_REFRESHES:
        refresh_url = url_for("checkout.pack_success", session_id=session_id, refresh=refreshes + 1)
    return render_template("checkout/pack_success.html", result=result, refresh_url=refresh_url)


@bp.get("/cancel")
def cancel() -> str:
    plan_id, cycle = request.args.get("plan"), request.args.get("cycle")
    catalog = get_catalog()
    plan = catalog.plans.get(plan_id or "")
    return render_template(
        "checkout/cancel.html",
        plan=plan,
        cycle=cycle if cycle in CYCLES else "monthly",
    )
