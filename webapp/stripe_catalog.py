"""Make Stripe sell exactly the catalog: a product per plan, a price per plan and cycle.

Uses only the gateway. Prices are immutable on Stripe, so a changed amount means a new price that
takes over the lookup key (`transfer_lookup_key`) while the old one is archived.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import click
from flask import current_app
from flask.cli import AppGroup

from webapp.catalog import Catalog, Price, get_catalog
from webapp.stripe_gateway import PaymentProviderError, StripeGateway, get_gateway

INTERVALS = {"monthly": "month", "yearly": "year"}


@dataclass
class CatalogReport:
    changes: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.changes.append(line)


def _plan_products(gateway: StripeGateway) -> dict[str, object]:
    """Our products on Stripe, by the plan id in their metadata."""
    found = {}
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


def _differences(gateway: StripeGateway, catalog: Catalog) -> tuple[list[str], dict, dict]:
    """What differs between the catalog and Stripe, plus what Stripe has (for fixing it)."""
    products = _plan_products(gateway)
    by_key = {}
    keys = [price.lookup_key for price in catalog.prices()]
    for stripe_price in gateway.list_prices(lookup_keys=keys, active=True):
        by_key[stripe_price.lookup_key] = stripe_price
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
    return problems, products, by_key


def check_catalog(gateway: StripeGateway, catalog: Catalog) -> list[str]:
    """Every difference between the catalog and Stripe; empty when they agree."""
    return _differences(gateway, catalog)[0]


def sync_catalog(gateway: StripeGateway, catalog: Catalog) -> list[str]:
    """Create or fix products and prices until Stripe matches the catalog; returns the changes."""
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
            existing = by_key.get(price.lookup_key)
            if existing is not None and _price_matches(existing, price, product.id):
                continue
            created = gateway.create_price(
                product_id=product.id,
                unit_amount=price.amount_cents,
                currency=price.currency,
                interval=INTERVALS[price.cycle],
                lookup_key=price.lookup_key,
                metadata={"plan_id": plan.id, "cycle": price.cycle},
                transfer_lookup_key=existing is not None,
                # Several processes may sync at once (each gunicorn worker on first use in
                # sandbox mode): the same key makes the later ones replay the first one's price.
                idempotency_key=(
                    f"catalog-price-{price.lookup_key}-{price.amount_cents}-"
                    f"{existing.id if existing is not None else 'first'}"
                ),
            )
            amount = f"{price.amount_cents} {price.currency}"
            report.add(f"created price {created.id} ({price.lookup_key}, {amount})")
            if existing is not None:
                gateway.archive_price(existing.id)
                report.add(
                    f"archived price {existing.id} ({price.lookup_key}, {existing.unit_amount})"
                )
    gateway.forget_prices()
    return report.changes


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


def _deliver_sandbox_webhooks() -> None:
    # A CLI process exits at once; send the events it caused before it goes.
    sandbox = get_gateway().sandbox_instance
    if sandbox is not None and current_app.config.get("SANDBOX_WEBHOOK_DELIVERY") != "sync":
        sandbox.webhooks.deliver_due()
