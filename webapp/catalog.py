"""The plan catalog: ids, prices, credits and Stripe lookup keys, loaded from `catalog.toml`.

The numbers here are the truth for money: pages, the API and Stripe all come from them. The copy
(names, taglines, features…) in the file is only the default; marketing publishes revisions of it
(see `webapp.copy`).
"""

from __future__ import annotations

import copy
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, current_app

from webapp.checkout_options import (
    CheckoutOptions,
    CheckoutOptionsError,
    parse_checkout_settings,
    resolve,
)
from webapp.plan_changes import PlanChangePolicy, PolicyError, parse_policy

CATALOG_PATH = Path(__file__).with_name("catalog.toml")
CYCLES: tuple[str, ...] = ("monthly", "yearly")
PLAN_IDS: tuple[str, ...] = ("starter", "professional", "business", "agency")
COPY_FIELDS = ("name", "tagline", "description", "features", "badge", "highlighted", "cta_label")
# A pack's copy: `name` is also what Stripe (product, Checkout, receipt) and the ledger call it;
# marketing's published copy renames it on our pages and in the API only (webapp/plan_copy.py).
PACK_COPY_FIELDS = ("name", "description", "badge")


class CatalogError(ValueError):
    """The catalog file is missing something or contradicts itself."""


class UnknownPlan(LookupError):
    """A plan id or billing cycle that the catalog does not sell."""


class UnknownPack(LookupError):
    """A credit pack id that the catalog does not sell."""


@dataclass(frozen=True)
class Pack:
    """A one-time purchase of `credits` for `amount_cents` (README, "Credit packs")."""

    id: str
    name: str
    credits: int
    amount_cents: int
    currency: str
    # `description` and `badge` of the file (both optional): the default copy with `name`.
    description: str = ""
    badge: str = ""

    @property
    def lookup_key(self) -> str:
        return f"pack_{self.id}"

    @property
    def default_copy(self) -> dict[str, str]:
        """The copy a fresh install (or a document older than packs' copy) shows."""
        return {"name": self.name, "description": self.description, "badge": self.badge}


@dataclass(frozen=True)
class Price:
    plan_id: str
    cycle: str
    amount_cents: int
    currency: str

    @property
    def lookup_key(self) -> str:
        return f"{self.plan_id}_{self.cycle}"


@dataclass(frozen=True)
class Plan:
    id: str
    monthly_credits: int
    prices: dict[str, Price]
    default_copy: dict[str, Any] = field(compare=False)
    # A free trial before the first payment (Stripe: `subscription_data.trial_period_days`), 0
    # for none; offered only while `[checkout] free_trials` is on, once per person ever.
    trial_period_days: int = 0
    # What a trial grants: once per person ever, however many trials they start (billing/trials.py).
    trial_credits: int = 0

    def price(self, cycle: str) -> Price:
        try:
            return self.prices[cycle]
        except KeyError:
            raise UnknownPlan(f"unknown billing cycle {cycle!r}") from None

    @property
    def yearly_saving_cents(self) -> int:
        return 12 * self.prices["monthly"].amount_cents - self.prices["yearly"].amount_cents


@dataclass(frozen=True)
class Catalog:
    currency: str
    plans: dict[str, Plan]  # in display order of the file
    default_page_copy: dict[str, Any]
    policy: PlanChangePolicy
    # `[checkout]`: the checkout options of each environment (see webapp/checkout_options.py).
    checkout: dict[str, CheckoutOptions] = field(default_factory=dict, compare=False)
    # `[[packs]]`: credit packs in the file's order (none is fine).
    packs: dict[str, Pack] = field(default_factory=dict)

    def pack(self, pack_id: object) -> Pack:
        if not isinstance(pack_id, str) or pack_id not in self.packs:
            raise UnknownPack(f"unknown credit pack {pack_id!r}")
        return self.packs[pack_id]

    def plan(self, plan_id: str) -> Plan:
        try:
            return self.plans[plan_id]
        except (KeyError, TypeError):
            raise UnknownPlan(f"unknown plan {plan_id!r}") from None

    def price(self, plan_id: str, cycle: str) -> Price:
        return self.plan(plan_id).price(cycle)

    def price_by_lookup_key(self, lookup_key: str) -> Price:
        plan_id, _, cycle = lookup_key.rpartition("_")
        return self.price(plan_id, cycle)

    def prices(self) -> list[Price]:
        return [price for plan in self.plans.values() for price in plan.prices.values()]

    def default_copy(self) -> dict[str, Any]:
        """The copy document a fresh install publishes as revision 1."""
        # A deep copy: callers edit the document, and the loaded catalog must stay as reviewed.
        return copy.deepcopy(
            {
                "page": self.default_page_copy,
                "plans": {plan.id: plan.default_copy for plan in self.plans.values()},
                "packs": {pack.id: pack.default_copy for pack in self.packs.values()},
            }
        )


def _require(mapping: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in mapping:
        raise CatalogError(f"{where}: missing {key!r}")
    value = mapping[key]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise CatalogError(f"{where}: {key!r} must be an integer, got {value!r}")
    if not isinstance(value, kind):
        raise CatalogError(f"{where}: {key!r} must be {kind.__name__}, got {value!r}")
    return value


def _parse_plan(raw: dict[str, Any], currency: str, index: int) -> Plan:
    where = f"plans[{index}]"
    plan_id = _require(raw, "id", str, where)
    where = f"plan {plan_id!r}"
    credits = _require(raw, "monthly_credits", int, where)
    if credits <= 0:
        raise CatalogError(f"{where}: monthly_credits must be positive")
    prices = {}
    for cycle in CYCLES:
        cents = _require(raw, f"{cycle}_cents", int, where)
        if cents <= 0:
            raise CatalogError(f"{where}: {cycle}_cents must be positive")
        prices[cycle] = Price(plan_id, cycle, cents, currency)
    copy = _require(raw, "copy", dict, where)
    for key in (*COPY_FIELDS, "display_order"):
        if key not in copy:
            raise CatalogError(f"{where}: copy is missing {key!r}")
    if not copy["name"]:
        raise CatalogError(f"{where}: copy.name must not be empty")
    trial_days, trial_credits = _parse_trial(raw, credits, where)
    return Plan(plan_id, credits, prices, copy, trial_days, trial_credits)


# Stripe: "Has to be at least 1" (SDK checkout session params, trial_period_days) and "The trial
# period must be 730 days (2 years) or less" (docs.stripe.com/billing/subscriptions/trials).
MAX_TRIAL_DAYS = 730


def _parse_trial(raw: dict[str, Any], monthly_credits: int, where: str) -> tuple[int, int]:
    """(trial_period_days, trial_credits), both optional (0: no trial, no trial credits)."""
    days = _require(raw, "trial_period_days", int, where) if "trial_period_days" in raw else 0
    grant = _require(raw, "trial_credits", int, where) if "trial_credits" in raw else 0
    if not 0 <= days <= MAX_TRIAL_DAYS:
        raise CatalogError(f"{where}: trial_period_days must be 0 (none) to {MAX_TRIAL_DAYS}")
    if not 0 <= grant < monthly_credits:
        raise CatalogError(f"{where}: trial_credits must be 0 or more and below monthly_credits")
    if grant and not days:
        raise CatalogError(f"{where}: trial_credits without trial_period_days")
    return days, grant


PACK_ID_PATTERN = r"^pkg_[a-z0-9_]{1,30}$"
PACK_ID = re.compile(PACK_ID_PATTERN)


def _parse_packs(raw_packs: Any, currency: str) -> dict[str, Pack]:
    if not isinstance(raw_packs, list):
        raise CatalogError("catalog: packs must be a list of [[packs]] tables")
    packs: dict[str, Pack] = {}
    for index, raw in enumerate(raw_packs):
        where = f"packs[{index}]"
        pack_id = _require(raw, "id", str, where)
        if not PACK_ID.match(pack_id):
            raise CatalogError(f"{where}: id must look like pkg_name (a-z, 0-9, _): {pack_id!r}")
        if pack_id in packs:
            raise CatalogError(f"{where}: pack {pack_id!r} appears twice")
        where = f"pack {pack_id!r}"
        name = _require(raw, "name", str, where).strip()
        credits = _require(raw, "credits", int, where)
        cents = _require(raw, "price_cents", int, where)
        if not name:
            raise CatalogError(f"{where}: name must not be empty")
        if credits <= 0 or cents <= 0:
            raise CatalogError(f"{where}: credits and price_cents must be positive")
        description, badge = (
            _require(raw, key, str, where).strip() if key in raw else ""
            for key in ("description", "badge")
        )
        packs[pack_id] = Pack(pack_id, name, credits, cents, currency, description, badge)
    return packs


def parse_catalog(data: dict[str, Any]) -> Catalog:
    """Validate a parsed catalog file; raise CatalogError naming the first problem."""
    currency = _require(data, "currency", str, "catalog")
    if currency != "usd":
        raise CatalogError(f"catalog: currency must be 'usd', got {currency!r}")
    raw_plans = _require(data, "plans", list, "catalog")
    plans = [_parse_plan(raw, currency, i) for i, raw in enumerate(raw_plans)]
    ids = [plan.id for plan in plans]
    if sorted(ids) != sorted(PLAN_IDS) or len(set(ids)) != len(ids):
        raise CatalogError(f"catalog: plans must be exactly {', '.join(PLAN_IDS)}; got {ids}")
    for plan in plans:
        if plan.yearly_saving_cents < 0:
            raise CatalogError(f"plan {plan.id!r}: yearly price exceeds twelve monthly payments")
    page = _require(data, "page", dict, "catalog")
    for key in ("headline", "subheadline"):
        _require(page, key, str, "page")
    page.setdefault("faq", [])
    try:
        policy = parse_policy(data.get("plan_changes"))
    except PolicyError as exc:
        raise CatalogError(str(exc)) from None
    try:
        checkout = parse_checkout_settings(data.get("checkout"))
    except CheckoutOptionsError as exc:
        raise CatalogError(str(exc)) from None
    packs = _parse_packs(data.get("packs", []), currency)
    return Catalog(currency, {plan.id: plan for plan in plans}, page, policy, checkout, packs)


def load_catalog(path: Path = CATALOG_PATH) -> Catalog:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise CatalogError(f"catalog file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse_catalog(data)
    except CatalogError as exc:
        raise CatalogError(f"{path}: {exc}") from None


def init_app(app: Flask) -> None:
    """Load and validate the catalog once; a bad catalog stops start-up here, and so does a
    `CHECKOUT_*` override that is not true or false."""
    catalog = load_catalog(Path(app.config.get("CATALOG_PATH") or CATALOG_PATH))
    app.extensions["catalog"] = catalog
    try:
        app.extensions["checkout_options"] = resolve(
            catalog.checkout, app.config["APP_ENV"], app.config.get("CHECKOUT_OVERRIDES") or {}
        )
    except CheckoutOptionsError as exc:
        raise CatalogError(str(exc)) from None
    # Pages say what the options change ("plus tax where applicable" with automatic tax).
    app.jinja_env.globals["checkout_options"] = app.extensions["checkout_options"]


def get_catalog() -> Catalog:
    catalog: Catalog = current_app.extensions["catalog"]
    return catalog


def get_checkout_options() -> CheckoutOptions:
    """The checkout options in force here: `[checkout]` for APP_ENV, with overrides applied."""
    options: CheckoutOptions = current_app.extensions["checkout_options"]
    return options


def format_money(cents: int, currency: str = "usd") -> str:
    """`1299` → `$12.99`; `1299000` → `$12,990.00`."""
    symbol = {"usd": "$"}[currency]
    sign = "-" if cents < 0 else ""
    dollars, rest = divmod(abs(cents), 100)
    return f"{sign}{symbol}{dollars:,}.{rest:02d}"
