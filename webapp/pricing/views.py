"""The pricing page: the four plans, monthly or yearly."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, current_app, g, render_template, request, session
from flask_login import current_user
from flask_wtf.csrf import generate_csrf

from webapp import billing
from webapp.auth.forms import EmptyForm
from webapp.catalog import CYCLES, Catalog, Plan, get_catalog
from webapp.plan_copy import PublishedCopy, current_version, published_copy

bp = Blueprint("pricing", __name__)


@dataclass(frozen=True)
class PlanOffer:
    """What one pricing card shows: a plan, its copy and its price for the chosen cycle."""

    plan: Plan
    copy: dict[str, Any]
    cycle: str

    @property
    def id(self) -> str:
        return self.plan.id

    @property
    def price_cents(self) -> int:
        return self.plan.price(self.cycle).amount_cents

    @property
    def monthly_equivalent_cents(self) -> int:
        # Rounded down so we never advertise a per-month figure above what is charged.
        return self.price_cents // 12 if self.cycle == "yearly" else self.price_cents

    @property
    def yearly_saving_cents(self) -> int:
        return self.plan.yearly_saving_cents


def selected_cycle(value: str | None) -> str:
    """The cycle asked for in the query string; anything unknown means monthly."""
    return value if value in CYCLES else "monthly"


def build_offers(catalog: Catalog, copy: PublishedCopy, cycle: str) -> list[PlanOffer]:
    offers = [PlanOffer(plan, copy.plan(plan.id), cycle) for plan in catalog.plans.values()]
    return sorted(offers, key=lambda offer: offer.copy.get("display_order", 0))


def render_pricing(copy: PublishedCopy, **extra: Any) -> str:
    cycle = selected_cycle(request.args.get("cycle"))
    highlight = request.args.get("plan")
    catalog = get_catalog()
    return render_template(
        "pricing/index.html",
        offers=build_offers(catalog, copy, cycle),
        page=copy.page,
        cycle=cycle,
        highlight=highlight if highlight in catalog.plans else None,
        **visitor_context(),
        **extra,
    )


class RenderedPageCache:
    """Rendered pricing pages, per copy version, cycle, highlighted plan and kind of visitor.

    Keyed by the published copy version, so a publish is served at once by every worker; entries
    of older versions are dropped on the first request that sees a new one.
    """

    def __init__(self) -> None:
        self._version: int | None = None
        self._pages: dict[tuple[str | None, ...], str] = {}
        self._lock = threading.Lock()
        self._checked_at = float("-inf")  # when the database was last asked for the version

    def version(self, max_age: float, read: Callable[[], int]) -> int:
        """The published copy version, asking `read` (the database) at most every `max_age` s."""
        with self._lock:
            if self._version is not None and time.monotonic() - self._checked_at < max_age:
                return self._version
        version = read()
        with self._lock:
            if version != self._version:
                self._version, self._pages = version, {}
            self._checked_at = time.monotonic()
        return version

    def get_or_render(self, version: int, key: tuple[str | None, ...], render) -> str:
        with self._lock:
            if version != self._version:
                self._version, self._pages = version, {}
            page = self._pages.get(key)
        if page is None:
            page = render()
            with self._lock:
                if version == self._version:
                    self._pages[key] = page
        return page


def _page_cache() -> RenderedPageCache:
    # One cache per app: copy versions are only comparable within one database.
    return current_app.extensions.setdefault("pricing_page_cache", RenderedPageCache())


@bp.get("/")
@bp.get("/pricing")
def index() -> str:
    if session.get("_flashes"):
        return render_pricing(published_copy())  # flashes are per person: never cached
    cycle = selected_cycle(request.args.get("cycle"))
    plan = request.args.get("plan")
    key = (request.path, cycle, plan if plan in get_catalog().plans else None)
    cache = _page_cache()
    if current_user.is_authenticated:
        return _member_page(cache, key)
    # Asking which copy version is published was this page's only database work, and cost more
    # than the rest of it: trusting the answer for PRICING_CACHE_SECONDS lets the busiest page
    # skip the database, while anonymous visitors of other workers see a publish that much later.
    version = cache.version(current_app.config["PRICING_CACHE_SECONDS"], current_version)
    return cache.get_or_render(version, key, lambda: render_pricing(published_copy()))


# Stands in for the visitor's CSRF token in cached pages; stamped with the real one per request.
CSRF_PLACEHOLDER = "csrf-placeholder-4e1d9c"


def _member_page(cache: RenderedPageCache, key: tuple[str | None, ...]) -> str:
    """A logged-in visitor's page differs from another's only by their plan, their role and
    their CSRF token; the first two go into the cache key, the token is stamped in after."""
    # Editors check the exact version (they have just published); others may trust it briefly.
    max_age = 0 if current_user.is_editor else current_app.config["PRICING_CACHE_SECONDS"]
    version = cache.version(max_age, current_version)
    subscription = billing.live_subscription(current_user.id)
    plan_state = (subscription.plan_id, subscription.cycle) if subscription else (None, None)
    member_key = (*key, "member", *plan_state, str(current_user.is_editor))
    page = cache.get_or_render(
        version,
        member_key,
        lambda: _render_with_csrf_placeholder(lambda: render_pricing(published_copy())),
    )
    return page.replace(CSRF_PLACEHOLDER, generate_csrf())


def _render_with_csrf_placeholder(render: Callable[[], str]) -> str:
    # Flask-WTF keeps the request's token in `g.csrf_token`; every form rendered while it holds
    # the placeholder carries the placeholder instead.
    real_token = generate_csrf()
    g.csrf_token = CSRF_PLACEHOLDER
    try:
        return render()
    finally:
        g.csrf_token = real_token


def visitor_context() -> dict[str, Any]:
    """What the cards need to know about a logged-in visitor: their plan, and forms to post."""
    if not current_user.is_authenticated:
        return {}
    subscription = billing.live_subscription(current_user.id)
    return {
        "current_plan": subscription.plan_id if subscription else None,
        "current_cycle": subscription.cycle if subscription else None,
        "form": EmptyForm(),
    }
