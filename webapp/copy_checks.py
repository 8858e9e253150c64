"""Copy against the catalog: numbers of credits and prices that marketing's text states.

Copy is free text, so it can say "5,000 credits/month" next to the catalog's real 1,000. The card's
credit line comes from the catalog (and a feature line that only restates it is not shown, see
`is_credit_line`); anything else the copy states is checked here and shown to the editor as a
warning. A warning, not a refusal: "up to 3 team members" or "$5 off" are not claims about the
catalog, and marketing knows best what it means."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from webapp.catalog import Catalog, Plan, format_money

# "1,000 credits", "3000 credits", "10k credits": the number, and "k" for thousands.
CREDITS = re.compile(r"(\d[\d,]*(?:\.\d+)?)\s*(k)?\s+credits?\b", re.IGNORECASE)
# "$12.99", "$ 129.90", "$4": the site's prices are in US dollars.
PRICE = re.compile(r"\$\s?(\d[\d,]*(?:\.\d{1,2})?)")
# A feature line that only states the monthly credits: the catalog's credit line says that.
CREDIT_LINE = re.compile(
    r"^\s*\d[\d,]*(?:\.\d+)?\s*k?\s+credits?\s*(?:/|a|per|each)\s*(?:month|mo)\.?\s*$",
    re.IGNORECASE,
)
PLAN_FIELDS = ("name", "tagline", "description", "features", "badge", "cta_label")


def is_credit_line(feature: str) -> bool:
    """A feature that only says how many credits a month ("1,000 credits/month")."""
    return bool(CREDIT_LINE.match(feature))


@dataclass(frozen=True)
class Disagreement:
    """A number in the copy that no figure of the catalog matches."""

    where: str
    text: str
    catalog_says: str

    def __str__(self) -> str:
        return f"{self.where}: “{self.text}”, but the catalog says {self.catalog_says}."


def disagreements(document: dict[str, Any], catalog: Catalog) -> list[Disagreement]:
    """Every credit count or price in `document` that the catalog does not state."""
    found: list[Disagreement] = []
    everyone = list(catalog.plans.values())
    page = document.get("page", {})
    page_texts = [
        ("Pricing page · Headline", page.get("headline")),
        ("Pricing page · Sub-headline", page.get("subheadline")),
    ]
    for number, entry in enumerate(page.get("faq", []), start=1):
        page_texts.append((f"FAQ question {number}", entry.get("question")))
        page_texts.append((f"FAQ question {number} · Answer", entry.get("answer")))
    for where, text in page_texts:
        found += _check(where, text or "", everyone, catalog)
    for plan_id, copy in document.get("plans", {}).items():
        if plan_id not in catalog.plans:
            continue
        plan = catalog.plans[plan_id]
        for name in PLAN_FIELDS:
            value = copy.get(name)
            lines = value if isinstance(value, list) else [value or ""]
            label = f"{copy.get('name') or plan_id} · {name.replace('_', ' ').capitalize()}"
            for line in lines:
                found += _check(label, line, [plan], catalog)
    return found


def _check(where: str, text: str, plans: list[Plan], catalog: Catalog) -> Iterator[Disagreement]:
    credits = _credit_figures(plans, catalog)
    for match in CREDITS.finditer(text):
        if _count(match) not in credits:
            yield Disagreement(where, match.group(0), _credits_said(plans))
    prices = _price_figures(plans, catalog)
    for match in PRICE.finditer(text):
        if _cents(match.group(1)) not in prices:
            yield Disagreement(where, match.group(0), _prices_said(plans))


def _count(match: re.Match[str]) -> int:
    number = Decimal(match.group(1).replace(",", ""))
    return int(number * 1000 if match.group(2) else number)


def _cents(amount: str) -> int:
    return int(Decimal(amount.replace(",", "")) * 100)


def _credit_figures(plans: Iterable[Plan], catalog: Catalog) -> set[int]:
    figures = {pack.credits for pack in catalog.packs.values()}
    for plan in plans:
        figures |= {plan.monthly_credits, plan.monthly_credits * 12}
        if plan.trial_credits:
            figures.add(plan.trial_credits)
    return figures


def _price_figures(plans: Iterable[Plan], catalog: Catalog) -> set[int]:
    figures = {pack.amount_cents for pack in catalog.packs.values()}
    for plan in plans:
        yearly = plan.price("yearly").amount_cents
        monthly_equivalent = (Decimal(yearly) / 12).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        figures |= {
            plan.price("monthly").amount_cents,
            yearly,
            int(monthly_equivalent),
            plan.yearly_saving_cents,
        }
    return figures


def _credits_said(plans: list[Plan]) -> str:
    if len(plans) == 1:
        return f"{plans[0].monthly_credits:,} credits a month"
    return "no plan or pack has that many credits"


def _prices_said(plans: list[Plan]) -> str:
    if len(plans) == 1:
        plan = plans[0]
        return (
            f"{format_money(plan.price('monthly').amount_cents)} a month or "
            f"{format_money(plan.price('yearly').amount_cents)} a year"
        )
    return "no plan or pack costs that"
