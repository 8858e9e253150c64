"""The pricing page: the four plans, monthly or yearly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, render_template, request

from webapp.catalog import CYCLES, Catalog, Plan, get_catalog
from webapp.plan_copy import PublishedCopy, published_copy

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
        **extra,
    )


@bp.get("/")
@bp.get("/pricing")
def index() -> str:
    return render_pricing(published_copy())
