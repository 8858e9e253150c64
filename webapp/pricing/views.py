"""The pricing page: the four plans, monthly or yearly."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from flask import Blueprint, Response, render_template, request, session
from flask_login import current_user

from webapp import billing, member_cache
from webapp.auth.forms import EmptyForm
from webapp.billing.low_balance import banner_shown as low_balance_banner_shown
from webapp.billing.trials import had_trial, offered_trial_days
from webapp.catalog import CYCLES, Catalog, Plan, get_catalog
from webapp.page_cache import (
    copy_version,
    pricing_pages,
    render_with_csrf_placeholder,
    stamped_response,
)
from webapp.plan_copy import PublishedCopy, pack_offers, published_copy
from webapp.public_pages import is_anonymous_request, private_response, serve_public

bp = Blueprint("pricing", __name__)


@dataclass(frozen=True)
class PlanOffer:
    """What one pricing card shows: a plan, its copy and its price for the chosen cycle."""

    plan: Plan
    copy: dict[str, Any]
    cycle: str
    # The free trial this visitor would get on this plan, in days (0: none; see billing/trials.py).
    trial_days: int = 0

    @property
    def id(self) -> str:
        return self.plan.id

    @property
    def price_cents(self) -> int:
        return self.plan.price(self.cycle).amount_cents

    @property
    def monthly_equivalent_cents(self) -> int:
        # A yearly price rarely divides by 12: rounded half-up to the nearest cent and shown as
        # "about" (4990 → 416, "about $4.16 a month"; rounding down said 4.15, and 12 x 4.15
        # is not 49.90 either way). What is charged is always the yearly price itself.
        if self.cycle != "yearly":
            return self.price_cents
        return int((Decimal(self.price_cents) / 12).quantize(Decimal(1), rounding=ROUND_HALF_UP))

    @property
    def yearly_saving_cents(self) -> int:
        return self.plan.yearly_saving_cents


def selected_cycle(value: str | None) -> str:
    """The cycle asked for in the query string; anything unknown means monthly."""
    return value if value in CYCLES else "monthly"


def build_offers(
    catalog: Catalog, copy: PublishedCopy, cycle: str, *, trial_eligible: bool = False
) -> list[PlanOffer]:
    offers = [
        PlanOffer(
            plan,
            copy.plan(plan.id),
            cycle,
            offered_trial_days(plan, eligible=trial_eligible),
        )
        for plan in catalog.plans.values()
    ]
    return sorted(offers, key=lambda offer: offer.copy.get("display_order", 0))


def render_pricing(copy: PublishedCopy, **extra: Any) -> str:
    cycle = selected_cycle(request.args.get("cycle"))
    highlight = request.args.get("plan")
    catalog = get_catalog()
    return render_template(
        "pricing/index.html",
        offers=build_offers(catalog, copy, cycle, trial_eligible=trial_eligible()),
        page=copy.page,
        faq=catalog.policy.faq(copy.page.get("faq", [])),
        cycle=cycle,
        highlight=highlight if highlight in catalog.plans else None,
        packs=pack_offers(copy),  # a preview shows the draft's pack names too
        **visitor_context(),
        **extra,
    )


@bp.get("/")
@bp.get("/pricing")
def index() -> Response:
    cycle = selected_cycle(request.args.get("cycle"))
    plan = request.args.get("plan")
    key = (request.path, cycle, plan if plan in get_catalog().plans else None)
    if is_anonymous_request():
        # The page a CDN serves (webapp/public_pages.py): no cookie, so nobody's page.
        return serve_public(key, lambda: render_pricing(published_copy()))
    if session.get("_flashes"):
        return private_response(render_pricing(published_copy()))  # flashes are per person
    if current_user.is_authenticated:
        return private_response(_member_page(key))
    # A session cookie but nobody logged in (a visit to /login, say): the anonymous page, kept
    # private like every answer to a request with a session. Trusting the copy version for
    # PRICING_CACHE_SECONDS lets it skip the database, as the public page does.
    page = pricing_pages().get_or_render(
        copy_version(), key, lambda: render_pricing(published_copy())
    )
    return private_response(page)


def _member_page(key: tuple[str | None, ...]) -> Response:
    """A logged-in visitor's page differs from another's only by their plan, their role and
    their CSRF token; the first two go into the cache key, the token is stamped in after."""
    # Editors check the exact version (they have just published); others may trust it briefly.
    version = copy_version(exact=current_user.is_editor)
    member_key = (
        *key,
        "member",
        *plan_state(current_user.id),
        str(trial_eligible()),  # "14-day free trial" only for whoever never had one
        str(current_user.is_editor),
        str(current_user.email_verified_at is None),  # the "please verify" banner
        str(low_balance_banner_shown(current_user.id)),  # the "credits low" banner
    )
    page = pricing_pages().get_or_render(
        version,
        member_key,
        lambda: render_with_csrf_placeholder(lambda: render_pricing(published_copy())),
    )
    return stamped_response(page)


def plan_state(user_id: int) -> tuple[str | None, str | None]:
    """(plan, cycle) of the member's live subscription, or (None, None); from the member cache."""
    return member_cache.cached(user_id, "plan state", lambda: _live_plan_state(user_id))


def _live_plan_state(user_id: int) -> tuple[str | None, str | None]:
    subscription = billing.live_subscription(user_id)
    return (subscription.plan_id, subscription.cycle) if subscription else (None, None)


def trial_eligible() -> bool:
    """Would this visitor get a free trial? Visitors not logged in: yes (the sign-up checkout
    decides again); members: unless they had one (member cache)."""
    if not current_user.is_authenticated:
        return True
    user_id = current_user.id
    return member_cache.cached(user_id, "trial eligible", lambda: not had_trial(user_id))


def visitor_context() -> dict[str, Any]:
    """What the cards need to know about a logged-in visitor: their plan, and forms to post."""
    if not current_user.is_authenticated:
        return {}
    current_plan, current_cycle = plan_state(current_user.id)
    return {
        "current_plan": current_plan,
        "current_cycle": current_cycle,
        "switch_hint": _switch_hint(current_plan, current_cycle),
        "form": EmptyForm(),
    }


def _switch_hint(current_plan: str | None, current_cycle: str | None):
    """What switching from the member's plan to an offer does, per the plan-change policy."""
    catalog = get_catalog()

    def hint(offer: PlanOffer) -> str:
        if current_plan is None or current_cycle is None:
            return ""
        current = catalog.price(current_plan, current_cycle)
        return catalog.policy.switch_hint(current, offer.plan.price(offer.cycle))

    return hint
