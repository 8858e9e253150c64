"""The JSON API of `../shared/API.md`, under /api/v1.

Every authenticated endpoint is registered twice by `dual_route`: the plain path takes a JWT access
token, the same path with `/api` appended takes an API key. The views call the same billing
functions as the web pages; nothing here writes billing state itself.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from flask_limiter.util import get_remote_address

from webapp import billing
from webapp.api import presenters, refresh_tokens
from webapp.api.credentials import (
    api_user,
    api_user_id,
    credential_rate_key,
    require_api_key,
    require_jwt,
    require_service_token,
)
from webapp.api.errors import ApiError, validation_error
from webapp.api.key_management import bp as key_management_bp
from webapp.api.openapi import openapi_document
from webapp.api.requests import (
    integer_field,
    json_object,
    known_query,
    query_integer,
    string_field,
)
from webapp.api.tokens import issue_access_token
from webapp.auth.account_status import AccountDeactivated
from webapp.auth.accounts import authenticate
from webapp.auth.forms import MAX_PASSWORD_LENGTH
from webapp.auth.limits import spend_login_attempt
from webapp.billing import usage
from webapp.billing.history import MAX_PER_PAGE, invoice_history
from webapp.catalog import CYCLES, UnknownPack, UnknownPlan, get_catalog
from webapp.extensions import csrf, limiter
from webapp.models import User
from webapp.models.billing import CREDIT_TYPES
from webapp.page_cache import copy_version
from webapp.plan_copy import published_copy
from webapp.security import is_allowed_redirect_url
from webapp.urls import public_host, public_url

bp = Blueprint("api", __name__, url_prefix="/api/v1")
log = logging.getLogger(__name__)

# Token-authenticated: no cookies are read, so there is nothing for CSRF to protect.
csrf.exempt(bp)


def _api_limit() -> str:
    return current_app.config["API_RATE_LIMIT"]


# One budget per credential and one per IP, each shared by every endpoint of the API.
limiter.shared_limit(_api_limit, scope="api-credential", key_func=credential_rate_key)(bp)
limiter.shared_limit(_api_limit, scope="api-ip", key_func=get_remote_address)(bp)
# /api-keys: JWT only, so outside dual_route; nested, it shares this blueprint's handlers.
bp.register_blueprint(key_management_bp)


def dual_route(rule: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `rule` for JWT callers and `rule + "/api"` for API-key callers."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        name = view.__name__
        bp.add_url_rule(rule, name, require_jwt(view), **options)
        bp.add_url_rule(f"{rule}/api", f"{name}_api", require_api_key(view), **options)
        return view

    return decorator


# --- Errors -----------------------------------------------------------------------------------


@bp.errorhandler(ApiError)
def handle_api_error(exc: ApiError) -> Response:
    return exc.response()


@bp.errorhandler(billing.BillingError)
def handle_billing_error(exc: billing.BillingError) -> Response:
    return ApiError(exc.status, exc.code, exc.message).response()


@bp.errorhandler(billing.PaymentProviderError)
def handle_payment_provider_error(exc: billing.PaymentProviderError) -> Response:
    log.warning("API %s %s: payment provider error: %s", request.method, request.path, exc)
    # Unreachable or overloaded: a retry may work (503). Anything else Stripe refused: 502.
    status = 503 if isinstance(exc, billing.ProviderUnavailable) else 502
    return ApiError(status, "payment_provider_unavailable", exc.user_message).response()


# --- Public -----------------------------------------------------------------------------------


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document())


@bp.get("/plans")
def plans() -> Response:
    return jsonify(presenters.plans(get_catalog(), published_copy()))


def _password_login(*, refused: str, deactivated: str) -> User:
    """The user named by the body's email and password, after spending the log-in page's
    budgets (shared with it: no second door for guessing; 429 otherwise). 401 with the code
    `refused` for wrong credentials, `deactivated` for a deactivated account."""
    body = json_object({"email", "password"})
    email = string_field(body, "email", required=True, max_length=254)
    password = string_field(body, "password", required=True, max_length=MAX_PASSWORD_LENGTH)
    spend_login_attempt(email or "")
    try:
        user = authenticate(email or "", password or "")
    except AccountDeactivated:
        raise ApiError(401, deactivated, "This account has been deactivated.") from None
    if user is None:
        # Same answer for an unknown email and a wrong password: no account enumeration.
        raise ApiError(401, refused, "Incorrect email or password.")
    return user


def _no_store(response: Response) -> Response:
    # A bearer credential must not sit in any cache on the way (RFC 6749, section 5.1).
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/auth/token")
def token() -> Response:
    user = _password_login(refused="unauthorized", deactivated="unauthorized")
    issued = issue_access_token(user)
    return _no_store(
        jsonify(accessToken=issued.token, tokenType="Bearer", expiresIn=issued.expires_in)
    )


@bp.post("/auth/login")
def login() -> Response:
    user = _password_login(refused="invalid_credentials", deactivated="account_deactivated")
    pair = refresh_tokens.start_family(user)
    return _no_store(
        jsonify(
            success=True,
            message="Logged in.",
            user=presenters.login_user(user),
            tokens=presenters.token_pair(pair),
        )
    )


def _refresh_token_field() -> str:
    body = json_object({"refreshToken"})
    max_length = refresh_tokens.MAX_REFRESH_TOKEN_LENGTH
    return string_field(body, "refreshToken", required=True, max_length=max_length) or ""


@bp.post("/auth/refresh")
def refresh() -> Response:
    secret = _refresh_token_field()
    try:
        pair = refresh_tokens.rotate(secret)
    except refresh_tokens.RefreshTokenReused:
        log.warning("API refresh token reused; its family was revoked")
        raise ApiError(
            401,
            "refresh_token_reused",
            "This refresh token was already used. Every token of this log-in has been "
            "revoked; log in again.",
        ) from None
    except refresh_tokens.InvalidRefreshToken:
        raise ApiError(
            401,
            "invalid_refresh_token",
            "The refresh token is invalid, expired or revoked; log in again.",
        ) from None
    return _no_store(
        jsonify(success=True, message="Tokens refreshed.", tokens=presenters.token_pair(pair))
    )


@bp.post("/auth/logout")
def logout() -> Response:
    """Revoke the refresh token's family, and with it the access tokens issued with it.

    An unknown token answers 200 too (RFC 7009, section 2.2): it cannot be used either way,
    and the client has nothing else to do about it.
    """
    refresh_tokens.log_out(_refresh_token_field())
    return _no_store(jsonify(success=True, message="Logged out."))


# --- Subscriptions ----------------------------------------------------------------------------


def _redirect_url(
    body: dict[str, Any], field: str, default_endpoint: str, **default_args: str
) -> str:
    """`body[field]` if it points at an allowed host, else the site's default page."""
    value = string_field(body, field)
    if value is None:
        return public_url(default_endpoint, **default_args)
    allowed = current_app.config["ALLOWED_REDIRECT_HOSTS"] or [public_host()]
    if not is_allowed_redirect_url(value, allowed):
        raise ApiError(
            400,
            "invalid_redirect_url",
            f"{field} must be an absolute http(s) URL on an allowed host.",
        )
    return value


def _plan_and_cycle(body: dict[str, Any]) -> tuple[str, str]:
    plan_id = string_field(body, "planId", required=True) or ""
    cycle = string_field(body, "billingCycle")
    cycle = "monthly" if cycle is None else cycle
    try:
        get_catalog().plan(plan_id)
    except UnknownPlan:
        raise ApiError(
            400, "invalid_plan", f"Unknown planId. Choose one of: {_plan_ids()}."
        ) from None
    if cycle not in CYCLES:
        raise ApiError(400, "invalid_billing_cycle", "billingCycle must be 'monthly' or 'yearly'.")
    return plan_id, cycle


def _plan_ids() -> str:
    return ", ".join(get_catalog().plans)


@dual_route("/subscriptions/checkout", methods=["POST"])
def checkout() -> Response:
    body = json_object({"planId", "billingCycle", "successUrl", "cancelUrl"})
    plan_id, cycle = _plan_and_cycle(body)
    success_url = _redirect_url(body, "successUrl", "account.index")
    cancel_url = _redirect_url(body, "cancelUrl", "pricing.index")
    try:
        started = billing.start_checkout(
            api_user(), plan_id, cycle, success_url=success_url, cancel_url=cancel_url
        )
    except UnknownPlan:  # the catalog changed between our check and billing's: same answer
        raise ApiError(400, "invalid_plan", "Unknown planId.") from None
    return jsonify(
        sessionId=started.session_id,
        url=started.url,
        plan=presenters.checkout_plan(started.plan, started.price, published_copy()),
    )


@dual_route("/subscriptions/current", methods=["GET"])
def current() -> Response:
    # The member cache's copy (no query while the member's rows are unchanged: profiled, the
    # query and its transaction were most of this endpoint's time) and the copy version the
    # pricing page trusts for PRICING_CACHE_SECONDS.
    row = billing.live_subscription_snapshot(api_user_id())
    if row is None or not billing.has_access(row):
        return jsonify(hasSubscription=False, subscription=None, planDetails=None)
    plan = get_catalog().plan(row.plan_id)
    copy = published_copy(copy_version())
    return jsonify(
        hasSubscription=True,
        subscription=presenters.subscription(row),
        planDetails=presenters.plan_details(plan, plan.price(row.cycle), copy),
    )


@dual_route("/subscriptions/portal", methods=["POST"])
def portal() -> Response:
    body = json_object({"returnUrl"})
    return_url = _redirect_url(body, "returnUrl", "account.index")
    return jsonify(url=billing.create_portal_session(api_user(), return_url))


# --- Credits ----------------------------------------------------------------------------------


@dual_route("/credits/balance", methods=["GET"])
def credits_balance() -> Response:
    return jsonify(presenters.credits(billing.credit_summary(api_user().id)))


@dual_route("/credits/history", methods=["GET"])
def credits_history() -> Response:
    """The user's ledger, newest first: `limit` (default 20, max 100) from `offset`, of one
    `type` or all; validated as /billing/invoices is."""
    known_query({"limit", "offset", "type"})
    limit = query_integer("limit", default=usage.HISTORY_PER_PAGE, minimum=1, maximum=100)
    offset = query_integer("offset", default=0, minimum=0, maximum=1_000_000)
    entry_type = request.args.get("type")
    if entry_type is not None and entry_type not in CREDIT_TYPES:
        raise validation_error(f"type must be one of: {', '.join(CREDIT_TYPES)}.")
    page = usage.credit_history(api_user().id, limit=limit, offset=offset, entry_type=entry_type)
    return jsonify(presenters.credit_history(page))


# --- Credit packs -------------------------------------------------------------------------------


@dual_route("/credits/packages", methods=["GET"])
def credit_packages() -> Response:
    copy = published_copy()
    return jsonify(packages=[presenters.pack(pack, copy) for pack in get_catalog().packs.values()])


@dual_route("/credits/checkout", methods=["POST"])
def credits_checkout() -> Response:
    """A Checkout Session for one pack; no subscription needed. By default the buyer comes
    back to the account page with `?credits=purchased` or `?credits=canceled`; the webhook
    grants the credits (README, "Credit packs")."""
    body = json_object({"packageId", "successUrl", "cancelUrl"})
    package_id = string_field(body, "packageId", required=True) or ""
    if package_id not in get_catalog().packs:
        raise ApiError(
            400,
            "invalid_package",
            f"Unknown packageId. Choose one of: {', '.join(get_catalog().packs)}.",
        )
    success_url = _redirect_url(body, "successUrl", "account.index", credits="purchased")
    cancel_url = _redirect_url(body, "cancelUrl", "account.index", credits="canceled")
    try:
        started = billing.start_pack_checkout(
            api_user(), package_id, success_url=success_url, cancel_url=cancel_url
        )
    except UnknownPack:  # the catalog changed between our check and billing's: same answer
        raise ApiError(400, "invalid_package", "Unknown packageId.") from None
    return jsonify(
        sessionId=started.session_id,
        url=started.url,
        package=presenters.pack(started.pack, published_copy()),
    )


# --- Recording usage (our generation service only) --------------------------------------------


@bp.errorhandler(usage.InsufficientCredits)
def handle_insufficient_credits(exc: usage.InsufficientCredits) -> Response:
    """API.md's 402: the error envelope, with the balance and what the request needed."""
    response = jsonify(
        error={"code": exc.code, "message": exc.message}, balance=exc.balance, needed=exc.needed
    )
    response.status_code = exc.status
    return response


def _ledger_response(answer: usage.LedgerAnswer) -> Response:
    response = jsonify(presenters.ledger_answer(answer))
    # As Stripe marks a replayed idempotent request: the body is the first answer's.
    response.headers["Idempotent-Replayed"] = "true" if answer.replayed else "false"
    return response


@bp.post("/credits/usage")
@require_service_token
def credits_usage() -> Response:
    body = json_object({"userId", "amount", "description", "siteId", "idempotencyKey"})
    wanted = usage.UsageRequest(
        user_id=integer_field(body, "userId", minimum=1, maximum=2**31 - 1),
        amount=integer_field(body, "amount", minimum=1, maximum=MAX_USAGE_AMOUNT),
        description=_description(body),
        site_id=_site_id(body),
        idempotency_key=_idempotency_key(body),
    )
    return _ledger_response(usage.record_usage(wanted))


@bp.post("/credits/usage/reverse")
@require_service_token
def credits_usage_reverse() -> Response:
    body = json_object({"idempotencyKey"})
    return _ledger_response(usage.reverse_usage(_idempotency_key(body)))


MAX_USAGE_AMOUNT = 1_000_000
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,199}")


def _idempotency_key(body: dict[str, Any]) -> str:
    key = string_field(body, "idempotencyKey", required=True, max_length=200) or ""
    if not IDEMPOTENCY_KEY.fullmatch(key):
        raise validation_error(
            "idempotencyKey must be 1 to 200 letters, digits, '.', '_', ':' or '-' (a UUID fits)."
        )
    return key


def _description(body: dict[str, Any]) -> str:
    description = (string_field(body, "description", required=True, max_length=255) or "").strip()
    if not description:
        raise validation_error("description must not be empty.")
    return description


def _site_id(body: dict[str, Any]) -> str | None:
    if body.get("siteId") is None:
        return None
    return string_field(body, "siteId", max_length=255) or None


# --- Billing history --------------------------------------------------------------------------


@dual_route("/billing/invoices", methods=["GET"])
def billing_invoices() -> Response:
    """The user's invoices, newest first: `limit` (default 20, max 100) from `offset`, as
    `/credits/history` pages in API.md."""
    known_query({"limit", "offset"})
    limit = query_integer("limit", default=20, minimum=1, maximum=MAX_PER_PAGE)
    offset = query_integer("offset", default=0, minimum=0, maximum=1_000_000)
    page = invoice_history(api_user().id, limit=limit, offset=offset)
    return jsonify(presenters.invoices(page))
