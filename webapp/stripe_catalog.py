"""Make Stripe sell exactly the catalog: a product per plan, a price per plan and cycle, and a
billing-portal configuration that follows the plan-change policy.

Uses only the gateway. Prices are immutable on Stripe, so a changed amount means a new price that
takes over the lookup key (`transfer_lookup_key`) while the old one is archived; every price
carries `plan_id` and `cycle` metadata, which is how billing tells what a price is for. The
portal configuration lists every plan's current prices, so a re-price updates it too.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup

from webapp.catalog import Catalog, Pack, Price, get_catalog
from webapp.stripe_gateway import (
    PaymentProviderError,
    StripeGateway,
    get_gateway,
    plain_metadata,
)

INTERVALS = {"monthly": "month", "yearly": "year"}
# The metadata by which we find our own billing-portal configuration among the account's.
PORTAL_MARKER = {"managed_by": "llmgen-catalog"}
# Stripe's products by plan id, and its active prices by lookup key (as `_differences` reads them).
Products = dict[str, Any]
PricesByKey = dict[str, Any]


@dataclass
class CatalogReport:
    changes: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.changes.append(line)


def _plan_products(gateway: StripeGateway) -> Products:
    """Our products on Stripe, by the plan id in their metadata."""
    found: Products = {}
    for product in gateway.list_products():
        plan_id = product.metadata.to_dict().get("plan_id") if product.metadata else None
        if plan_id and product.active:
            found[plan_id] = product
    return found


def _price_matches(stripe_price, price: Price, product_id: str) -> bool:
    recurring = stripe_price.recurring
    return (
        stripe_price.unit_amount == price.amount_cents
        and stripe_price.currency == price.currency
        and stripe_price.product == product_id
        and recurring is not None
        and recurring.interval == INTERVALS[price.cycle]
        and (recurring.interval_count or 1) == 1
    )


def _differences(
    gateway: StripeGateway, catalog: Catalog
) -> tuple[list[str], Products, PricesByKey]:
    """What differs between the catalog and Stripe, plus what Stripe has (for fixing it)."""
    products = _plan_products(gateway)
    by_key: PricesByKey = {}
    keys = [price.lookup_key for price in catalog.prices()]
    for listed in gateway.list_prices(lookup_keys=keys, active=True):
        by_key[listed.lookup_key or ""] = listed
    problems = []
    for plan in catalog.plans.values():
        product = products.get(plan.id)
        name = plan.default_copy["name"]
        if product is None:
            problems.append(f"plan {plan.id}: no product on Stripe")
        elif product.name != name:
            problems.append(
                f"plan {plan.id}: product name is {product.name!r}, catalog says {name!r}"
            )
        for price in plan.prices.values():
            stripe_price = by_key.get(price.lookup_key)
            if stripe_price is None:
                problems.append(f"price {price.lookup_key}: no active price on Stripe")
            elif product is None or not _price_matches(stripe_price, price, product.id):
                interval = stripe_price.recurring.interval if stripe_price.recurring else "?"
                problems.append(
                    f"price {price.lookup_key}: Stripe charges {stripe_price.unit_amount} "
                    f"{stripe_price.currency} per {interval}, catalog says "
                    f"{price.amount_cents} {price.currency} per {INTERVALS[price.cycle]}"
                )
            elif not _metadata_matches(stripe_price, price):
                problems.append(
                    f"price {price.lookup_key}: metadata must say plan_id={price.plan_id} and "
                    f"cycle={price.cycle}"
                )
    return problems, products, by_key


def _price_metadata(price: Price) -> dict[str, str]:
    return {"plan_id": price.plan_id, "cycle": price.cycle}


def _metadata_matches(stripe_price, price: Price) -> bool:
    return _price_metadata(price).items() <= plain_metadata(stripe_price.metadata).items()


def check_catalog(gateway: StripeGateway, catalog: Catalog) -> list[str]:
    """Every difference between the catalog and Stripe; empty when they agree."""
    problems, products, by_key = _differences(gateway, catalog)
    problems += _pack_differences(gateway, catalog)[0]
    if problems:
        return problems  # the portal configuration is checked against a catalog Stripe sells
    return _portal_differences(gateway, catalog, products, by_key)[0]


def seed_sandbox(gateway: StripeGateway) -> list[str]:
    """Make a fresh sandbox sell the catalog (the gateway calls this before its first price)."""
    return sync_catalog(gateway, get_catalog())


def sync_catalog(gateway: StripeGateway, catalog: Catalog) -> list[str]:
    """Create or fix products, prices and the portal configuration until Stripe matches the
    catalog; returns the changes."""
    changes = _sync_prices(gateway, catalog) + _sync_packs(gateway, catalog)
    _problems, products, by_key = _differences(gateway, catalog)
    return changes + _sync_portal(gateway, catalog, products, by_key)


# --- credit packs: one product and one one-time price each -------------------------------------


def _pack_metadata(pack: Pack) -> dict[str, str]:
    return {"pack_id": pack.id}


def _pack_products(gateway: StripeGateway) -> dict[str, Any]:
    found = {}
    for product in gateway.list_products():
        pack_id = plain_metadata(product.metadata).get("pack_id")
        if pack_id and product.active:
            found[pack_id] = product
    return found


def _pack_price_matches(stripe_price: Any, pack: Pack, product_id: str) -> bool:
    return (
        stripe_price.unit_amount == pack.amount_cents
        and stripe_price.currency == pack.currency
        and stripe_price.product == product_id
        and stripe_price.recurring is None  # a one-time price (`type` "one_time")
        and _pack_metadata(pack).items() <= plain_metadata(stripe_price.metadata).items()
    )


def _pack_differences(
    gateway: StripeGateway, catalog: Catalog
) -> tuple[list[str], Products, PricesByKey]:
    if not catalog.packs:
        return [], {}, {}
    products = _pack_products(gateway)
    keys = [pack.lookup_key for pack in catalog.packs.values()]
    by_key: PricesByKey = {
        p.lookup_key or "": p for p in gateway.list_prices(lookup_keys=keys, active=True)
    }
    problems = []
    for pack in catalog.packs.values():
        product, price = products.get(pack.id), by_key.get(pack.lookup_key)
        if product is None:
            problems.append(f"pack {pack.id}: no product on Stripe")
        elif product.name != pack.name:
            problems.append(f"pack {pack.id}: product name is {product.name!r}, not {pack.name!r}")
        if price is None:
            problems.append(f"price {pack.lookup_key}: no active price on Stripe")
        elif product is None or not _pack_price_matches(price, pack, product.id):
            problems.append(
                f"price {pack.lookup_key}: Stripe charges {price.unit_amount} {price.currency}"
                f" ({price.type}), catalog says {pack.amount_cents} {pack.currency} once"
            )
    return problems, products, by_key


def _sync_packs(gateway: StripeGateway, catalog: Catalog) -> list[str]:
    """Each pack's product and one-time price; a changed amount makes a new price that takes
    over the lookup key, as plan prices do."""
    problems, products, by_key = _pack_differences(gateway, catalog)
    report = CatalogReport()
    if not problems:
        return report.changes
    for pack in catalog.packs.values():
        product = products.get(pack.id)
        if product is None:
            product = gateway.create_product(
                name=pack.name,
                metadata=_pack_metadata(pack),
                idempotency_key=f"catalog-product-{pack.id}",
            )
            report.add(f"created product {product.id} for pack {pack.id}")
        elif product.name != pack.name:
            product = gateway.update_product(product.id, name=pack.name)
            report.add(f"renamed product {product.id} to {pack.name!r}")
        existing = by_key.get(pack.lookup_key)
        if existing is not None and _pack_price_matches(existing, pack, product.id):
            continue
        created = gateway.create_price(
            product_id=product.id,
            unit_amount=pack.amount_cents,
            currency=pack.currency,
            interval=None,
            lookup_key=pack.lookup_key,
            metadata=_pack_metadata(pack),
            transfer_lookup_key=existing is not None,
            idempotency_key=(
                f"catalog-price-{pack.lookup_key}-{pack.amount_cents}-"
                f"{existing.id if existing is not None else 'first'}"
            ),
        )
        report.add(f"created price {created.id} ({pack.lookup_key}, {pack.amount_cents} once)")
        if existing is not None:
            gateway.archive_price(existing.id)
            report.add(f"archived price {existing.id} ({pack.lookup_key})")
    gateway.forget_prices()
    return report.changes


def _sync_price(
    gateway: StripeGateway,
    price: Price,
    product_id: str,
    existing: Any,  # the Stripe price holding the lookup key, or None
    report: CatalogReport,
) -> None:
    """Make the price holding `price`'s lookup key charge what the catalog says."""
    if existing is not None and not _metadata_matches(existing, price):
        # Before anything else: a price that loses its lookup key below must still say which
        # plan it is for, since its subscribers stay on it (billing reads this metadata).
        gateway.update_price(existing.id, metadata=_price_metadata(price))
        report.add(f"wrote plan metadata on price {existing.id} ({price.lookup_key})")
    if existing is not None and _price_matches(existing, price, product_id):
        return
    created = gateway.create_price(
        product_id=product_id,
        unit_amount=price.amount_cents,
        currency=price.currency,
        interval=INTERVALS[price.cycle],
        lookup_key=price.lookup_key,
        metadata=_price_metadata(price),
        transfer_lookup_key=existing is not None,
        # Several processes may sync at once (each gunicorn worker on first use in sandbox
        # mode): the same key makes the later ones replay the first one's price.
        idempotency_key=(
            f"catalog-price-{price.lookup_key}-{price.amount_cents}-"
            f"{existing.id if existing is not None else 'first'}"
        ),
    )
    amount = f"{price.amount_cents} {price.currency}"
    report.add(f"created price {created.id} ({price.lookup_key}, {amount})")
    if existing is not None:
        gateway.archive_price(existing.id)
        report.add(f"archived price {existing.id} ({price.lookup_key}, {existing.unit_amount})")


def _sync_prices(gateway: StripeGateway, catalog: Catalog) -> list[str]:
    problems, products, by_key = _differences(gateway, catalog)
    report = CatalogReport()
    if not problems:
        return report.changes
    for plan in catalog.plans.values():
        name = plan.default_copy["name"]
        product = products.get(plan.id)
        if product is None:
            product = gateway.create_product(
                name=name,
                metadata={"plan_id": plan.id},
                idempotency_key=f"catalog-product-{plan.id}",
            )
            report.add(f"created product {product.id} for plan {plan.id}")
        elif product.name != name:
            product = gateway.update_product(product.id, name=name)
            report.add(f"renamed product {product.id} to {name!r}")
        for price in plan.prices.values():
            _sync_price(gateway, price, product.id, by_key.get(price.lookup_key), report)
    gateway.forget_prices()
    return report.changes


# --- the billing-portal configuration -----------------------------------------------------------


def desired_portal_configuration(
    catalog: Catalog, products: Products, by_key: PricesByKey
) -> dict[str, Any]:
    """The portal configuration the plan-change policy calls for, as Stripe's create params.

    Upgrades apply at once and are invoiced at once (`always_invoice`); with upgrade_billing
    "new_period" they start a new billing period (`billing_cycle_anchor=now`). Downgrades wait for
    the period end when the policy says so: Stripe's portal then schedules any switch to a lower
    amount (`decreasing_item_amount`) or a shorter interval (`shortening_interval`).
    """
    policy = catalog.policy
    conditions = (
        [{"type": "decreasing_item_amount"}, {"type": "shortening_interval"}]
        if policy.downgrades == "period_end"
        else []
    )
    at_period_end = policy.cancellations == "period_end"
    reasons = list(policy.cancellation_reasons)
    subscription_update: dict[str, Any] = {
        "enabled": True,
        "default_allowed_updates": ["price"],
        "products": [
            {
                "product": products[plan.id].id,
                "prices": [by_key[price.lookup_key].id for price in plan.prices.values()],
            }
            for plan in catalog.plans.values()
        ],
        "proration_behavior": "always_invoice",
        "billing_cycle_anchor": "now" if policy.upgrade_billing == "new_period" else "unchanged",
        "schedule_at_period_end": {"conditions": conditions},
    }
    return {
        "business_profile": {"headline": "Manage your LLMGen plan"},
        "features": {
            "customer_update": {"enabled": False},
            "invoice_history": {"enabled": True},
            "payment_method_update": {"enabled": True},
            "subscription_cancel": {
                "enabled": True,
                "mode": "at_period_end" if at_period_end else "immediately",
                "proration_behavior": "none" if at_period_end else "create_prorations",
                "cancellation_reason": {
                    "enabled": bool(reasons),
                    "options": reasons or ["other"],
                },
            },
            "subscription_update": subscription_update,
            "subscription_pause": {"enabled": False},
        },
        "metadata": dict(PORTAL_MARKER),
    }


def _portal_view(configuration: Any) -> dict[str, Any]:
    """The parts of a configuration (Stripe's object or our params) the policy decides."""
    features = configuration["features"]
    update = features["subscription_update"]
    cancel = features["subscription_cancel"]
    schedule = update.get("schedule_at_period_end") or {}
    return {
        "subscription_update.enabled": bool(update["enabled"]),
        "subscription_update.default_allowed_updates": sorted(
            update.get("default_allowed_updates") or []
        ),
        "subscription_update.products": sorted(
            (p["product"], tuple(sorted(p["prices"]))) for p in update.get("products") or []
        ),
        "subscription_update.proration_behavior": update.get("proration_behavior"),
        "subscription_update.billing_cycle_anchor": update.get("billing_cycle_anchor")
        or "unchanged",
        "subscription_update.schedule_at_period_end": sorted(
            c["type"] for c in schedule.get("conditions") or []
        ),
        "subscription_cancel.enabled": bool(cancel["enabled"]),
        "subscription_cancel.mode": cancel.get("mode"),
        "subscription_cancel.cancellation_reason": (
            bool(cancel["cancellation_reason"]["enabled"]),
            sorted(cancel["cancellation_reason"].get("options") or []),
        ),
        "payment_method_update.enabled": bool(features["payment_method_update"]["enabled"]),
        "invoice_history.enabled": bool(features["invoice_history"]["enabled"]),
    }


def _portal_differences(
    gateway: StripeGateway, catalog: Catalog, products: Products, by_key: PricesByKey
) -> tuple[list[str], Any, dict[str, Any]]:
    """(problems, our configuration on Stripe or None, the desired params)."""
    desired = desired_portal_configuration(catalog, products, by_key)
    ours = [
        configuration
        for configuration in gateway.list_portal_configurations()
        if configuration.active
        and PORTAL_MARKER.items() <= plain_metadata(configuration.metadata).items()
    ]
    if not ours:
        return ["billing portal: no configuration of ours on Stripe"], None, desired
    current = _portal_view(ours[0].to_dict())
    problems = [
        f"billing portal: {key} is {current[key]!r} on Stripe, the catalog says {value!r}"
        for key, value in _portal_view(desired).items()
        if current[key] != value
    ]
    return problems, ours[0], desired


def _is_ours(configuration: Any) -> bool:
    return PORTAL_MARKER.items() <= plain_metadata(configuration.metadata).items()


def _sync_portal(
    gateway: StripeGateway, catalog: Catalog, products: Products, by_key: PricesByKey
) -> list[str]:
    problems, configuration, desired = _portal_differences(gateway, catalog, products, by_key)
    if not problems:
        return []
    if configuration is None:
        created = gateway.create_portal_configuration(
            desired, idempotency_key=f"portal-configuration-{_digest(desired)}"
        )
        return [f"created billing-portal configuration {created.id}"]
    features = copy.deepcopy(desired["features"])
    schedule = features["subscription_update"]["schedule_at_period_end"]
    if not schedule["conditions"]:
        # An empty list is not sent at all in form encoding; Stripe clears an array with "".
        schedule["conditions"] = ""
    gateway.update_portal_configuration(configuration.id, {"features": features})
    return [f"updated billing-portal configuration {configuration.id}: {len(problems)} change(s)"]


def _digest(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


stripe_cli = AppGroup("stripe", help="Keep Stripe (or the sandbox) in line with the catalog.")


@stripe_cli.command("sync-catalog")
def sync_catalog_command() -> None:
    """Create or update Stripe products and prices to match the catalog."""
    try:
        changes = sync_catalog(get_gateway(), get_catalog())
    except PaymentProviderError as exc:
        raise click.ClickException(f"Stripe refused: {exc}") from None
    for line in changes:
        click.echo(line)
    if not changes:
        click.echo("no changes: Stripe already matches the catalog")
    _deliver_sandbox_webhooks()


@stripe_cli.command("check-catalog")
def check_catalog_command() -> None:
    """Exit non-zero, listing each difference, when Stripe and the catalog disagree."""
    try:
        problems = check_catalog(get_gateway(), get_catalog())
    except PaymentProviderError as exc:
        raise click.ClickException(f"Stripe refused: {exc}") from None
    if problems:
        for line in problems:
            click.echo(line, err=True)
        raise SystemExit(1)
    click.echo("Stripe matches the catalog")


@stripe_cli.command("create-coupon")
@click.option("--percent-off", type=click.FloatRange(0, 100, min_open=True), help="e.g. 20")
@click.option("--amount-off", type=click.IntRange(min=1), help="cents off, e.g. 500 = $5")
@click.option("--currency", default=None, help="with --amount-off (default: the catalog's)")
@click.option(
    "--duration",
    type=click.Choice(["once", "repeating", "forever"]),
    default="once",
    show_default=True,
)
@click.option(
    "--months", "duration_in_months", type=click.IntRange(min=1), help="with --duration repeating"
)
@click.option("--max-redemptions", type=click.IntRange(min=1))
@click.option("--redeem-by", type=click.DateTime(["%Y-%m-%d"]), help="YYYY-MM-DD (UTC)")
@click.option("--name", help="shown to the customer on Checkout and invoices")
@click.option("--id", "coupon_id", help="your own id (default: Stripe makes one)")
def create_coupon_command(**options: Any) -> None:
    """Create a coupon (percent or amount off; once, repeating or forever). Prints its id."""
    if (options["percent_off"] is None) == (options["amount_off"] is None):
        raise click.UsageError("give exactly one of --percent-off or --amount-off")
    if options["amount_off"] is not None:
        options["currency"] = options["currency"] or get_catalog().currency
    elif options["currency"]:
        raise click.UsageError("--currency goes with --amount-off")
    if (options["duration"] == "repeating") != (options["duration_in_months"] is not None):
        raise click.UsageError("--months goes with --duration repeating, and it needs it")
    if options["redeem_by"] is not None:
        options["redeem_by"] = int(options["redeem_by"].replace(tzinfo=UTC).timestamp())
    try:
        coupon = get_gateway().create_coupon(**options)
    except PaymentProviderError as exc:
        raise click.ClickException(f"Stripe refused: {exc}") from None
    click.echo(coupon.id)
    _deliver_sandbox_webhooks()


@stripe_cli.command("create-promotion-code")
@click.option("--coupon", "coupon_id", required=True, help="the coupon's id")
@click.option("--code", required=True, help="what customers type, e.g. SPRING20")
@click.option("--max-redemptions", type=click.IntRange(min=1))
@click.option("--expires", type=click.DateTime(["%Y-%m-%d"]), help="YYYY-MM-DD (UTC)")
@click.option("--first-time-only", is_flag=True, help="only customers who never paid before")
def create_promotion_code_command(
    coupon_id: str, code: str, max_redemptions: int | None, expires: Any, first_time_only: bool
) -> None:
    """Create a customer-facing code for a coupon. Prints its id."""
    try:
        promotion_code = get_gateway().create_promotion_code(
            coupon_id=coupon_id,
            code=code,
            max_redemptions=max_redemptions,
            expires_at=int(expires.replace(tzinfo=UTC).timestamp()) if expires else None,
            first_time_transaction=first_time_only,
        )
    except PaymentProviderError as exc:
        raise click.ClickException(f"Stripe refused: {exc}") from None
    click.echo(promotion_code.id)
    _deliver_sandbox_webhooks()


def _deliver_sandbox_webhooks() -> None:
    # A CLI process exits at once; send the events it caused before it goes.
    sandbox = get_gateway().sandbox_instance
    if sandbox is not None and current_app.config.get("SANDBOX_WEBHOOK_DELIVERY") != "sync":
        sandbox.webhooks.deliver_due()
