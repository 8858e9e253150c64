"""Sign-up, log-in and log-out."""

from __future__ import annotations

import logging

from flask import (
    Blueprint,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.wrappers import Response

from webapp import public_pages
from webapp.auth import sessions
from webapp.auth.account_status import AccountDeactivated
from webapp.auth.accounts import authenticate, create_account
from webapp.auth.forms import EmptyForm, LoginForm, SignupForm
from webapp.auth.limits import device_for, remember_device, spend_login_attempt
from webapp.catalog import CYCLES, UnknownPlan, get_catalog
from webapp.checkout.forms import CheckoutForm
from webapp.extensions import login_manager
from webapp.models import User
from webapp.plan_copy import published_copy
from webapp.security import is_safe_next
from webapp.throttle import client_address, spend

bp = Blueprint("auth", __name__)
log = logging.getLogger(__name__)

LOGIN_FAILED = "Incorrect email or password."
# Shown only to someone who gave the right password, so it tells nobody else the address exists.
ACCOUNT_DEACTIVATED = "This account has been deactivated. Contact support to have it reopened."


@login_manager.user_loader
def load_user(stored_id: str) -> User | None:
    """The logged-in user, from the member cache: most page views need no query for it.

    None (logged out) unless the session was issued at the user's current session version.
    """
    parsed = sessions.parse_session_id(stored_id)
    if parsed is None:
        return None
    user_id, version = parsed
    columns = sessions.user_columns(user_id, version)
    if not sessions.is_current(columns, version):
        return None
    return sessions.attach_user(columns)


login_manager.login_view = "auth.login"
login_manager.login_message = "Please log in to continue."
login_manager.login_message_category = "info"


def chosen_plan(form: SignupForm | LoginForm) -> tuple[str, str] | None:
    """The (plan, cycle) carried by the form, if it names a plan we sell."""
    plan_id, cycle = form.plan.data, form.cycle.data or "monthly"
    if not plan_id:
        return None
    try:
        get_catalog().price(plan_id, cycle if cycle in CYCLES else "monthly")
    except UnknownPlan:
        return None
    return plan_id, cycle if cycle in CYCLES else "monthly"


def plan_summary(choice: tuple[str, str] | None) -> str | None:
    if choice is None:
        return None
    return f"{published_copy().plan(choice[0])['name']}, {choice[1]}"


def continue_after_auth(
    choice: tuple[str, str] | None, next_url: str | None = None
) -> Response | tuple[str, int]:
    """Where a freshly logged-in person goes: on with their plan, to `next`, or their account."""
    if choice is not None:
        # Straight on to Stripe Checkout for the plan they picked, without picking again.
        from webapp.checkout.views import begin_checkout

        return begin_checkout(*choice)
    if is_safe_next(next_url):
        return redirect(next_url, code=303)
    return redirect(url_for("account.index"), code=303)


def already_logged_in(
    choice: tuple[str, str] | None, next_url: str | None = None
) -> Response | str | tuple[str, int]:
    """Where a GET of the sign-up or login page takes a member: a link may name a plan, but
    only a POST may start a checkout, so they get a "Continue to checkout" button."""
    if choice is not None:
        from webapp.checkout.views import confirm_checkout

        return confirm_checkout(*choice)
    return continue_after_auth(None, next_url)


def start_session(user: User) -> None:
    """Log `user` in on a fresh session: nothing from before the login (a CSRF token an attacker
    may have planted, say) carries over. The plan choice travels in the form, not the session."""
    session.clear()
    g.pop("csrf_token", None)  # Flask-WTF's copy of the old token for this request
    login_user(user)


def _prefill_plan(form: SignupForm | LoginForm) -> None:
    if request.method == "GET":
        form.plan.data = request.args.get("plan", "")
        form.cycle.data = request.args.get("cycle", "")


@bp.route("/signup", methods=["GET", "POST"])
def signup() -> Response | str | tuple[str, int]:
    form = SignupForm()
    _prefill_plan(form)
    choice = chosen_plan(form)
    if current_user.is_authenticated and request.method == "GET":
        return already_logged_in(choice)
    if form.validate_on_submit():
        # Each sign-up hashes a password: a flood must not slow every page (429 otherwise).
        address = client_address()
        spend(("SIGNUP_RATE_LIMIT", address), ("SIGNUP_GLOBAL_RATE_LIMIT", "site"))
        if current_user.is_authenticated:
            logout_user()  # signing up starts a new identity; the old one ends here
        # Both validated as present (DataRequired).
        user = create_account(form.email.data or "", form.password.data or "")
        if user is not None:
            start_session(user)
            log.info("user %s signed up", user.id)
        # New address or taken, the answer is the same redirect (see README, "Sign-up probes"),
        # headers included: a log-in clears the browser's copy of the public pages, so this
        # answer does too when nobody was logged in.
        public_pages.clear_browser_cache()
        session["signup"] = {"plan": choice[0], "cycle": choice[1]} if choice else {}
        return redirect(url_for("auth.signup_done"), code=303)
    status = 400 if form.errors else 200
    return render_template("auth/signup.html", form=form, plan_summary=plan_summary(choice)), status


@bp.get("/signup/done")
def signup_done() -> Response | str:
    """Where every sign-up lands; what it shows depends only on this browser's session."""
    if "signup" not in session:
        return redirect(url_for("auth.signup"), code=303)
    wanted = session.pop("signup")
    choice = (wanted["plan"], wanted["cycle"]) if wanted else None
    if current_user.is_authenticated and choice is None:
        return redirect(url_for("account.index"), code=303)
    checkout = CheckoutForm(plan=choice[0], cycle=choice[1]) if choice else None
    return render_template(
        "auth/signup_done.html",
        checkout=checkout,
        plan_summary=plan_summary(choice),
        choice=choice,
        trial_days=_trial_days(choice) if current_user.is_authenticated else 0,
    )


def _trial_days(choice: tuple[str, str] | None) -> int:
    """The free trial the chosen plan comes with for this member (billing/trials.py)."""
    from webapp.billing.trials import trial_days_for

    plan = get_catalog().plans.get(choice[0]) if choice else None
    return trial_days_for(current_user.id, plan) if plan else 0


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str | tuple[str, int]:
    form = LoginForm()
    _prefill_plan(form)
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
    choice = chosen_plan(form)
    if current_user.is_authenticated and request.method == "GET":
        return already_logged_in(choice, form.next.data)
    if form.validate_on_submit():
        # Spent before the password is checked (429 otherwise), the same for unknown addresses.
        email, password = form.email.data or "", form.password.data or ""  # validated present
        spend_login_attempt(email, device_for(email))
        try:
            user = authenticate(email, password)
        except AccountDeactivated:
            form.form_errors.append(ACCOUNT_DEACTIVATED)
        else:
            if user is not None:
                start_session(user)
                remember_device(email)
                return continue_after_auth(choice, form.next.data)
            # Same message whether the email is unknown or the password wrong: no enumeration.
            form.form_errors.append(LOGIN_FAILED)
    status = 400 if form.errors or form.form_errors else 200
    return render_template("auth/login.html", form=form, plan_summary=plan_summary(choice)), status


@bp.post("/logout")
@login_required
def logout() -> Response:
    form = EmptyForm()
    if form.validate_on_submit():
        # Logging out ends every session and access token of the user, everywhere.
        sessions.end_sessions(current_user.id)
        logout_user()
        flash("You have been logged out.", "info")
    return redirect(url_for("pricing.index"), code=303)
