"""`flask stripe sync-catalog` and `check-catalog` against the sandbox, on a temp catalog."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.conftest import make_app
from webapp.catalog import CATALOG_PATH
from webapp.extensions import db
from webapp.stripe_catalog import PORTAL_MARKER
from webapp.stripe_gateway import get_gateway


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    path = tmp_path / "catalog.toml"
    shutil.copy(CATALOG_PATH, path)
    return path


@pytest.fixture
def config_overrides(catalog_file: Path) -> dict[str, Any]:
    return {"CATALOG_PATH": str(catalog_file), "SANDBOX_DELIVER_TO_SELF": False}


def run(app: Flask, *args: str):
    return app.test_cli_runner().invoke(args=["stripe", *args])


def test_sync_twice_changes_nothing_the_second_time(app: Flask):
    first = run(app, "sync-catalog")
    assert first.exit_code == 0, first.output
    # Four plans with two prices each, and each credit pack with its one-time price.
    packs = len(app.extensions["catalog"].packs)
    assert first.output.count("created product") == 4 + packs
    assert first.output.count("created price") == 8 + packs
    second = run(app, "sync-catalog")
    assert second.exit_code == 0
    assert "no changes" in second.output and "created" not in second.output


def test_check_passes_after_sync_and_fails_after_an_amount_edit(
    app: Flask, catalog_file: Path, database_url: str
):
    before = run(app, "check-catalog")
    assert before.exit_code == 1 and "no product on Stripe" in before.output
    assert run(app, "sync-catalog").exit_code == 0
    checked = run(app, "check-catalog")
    assert checked.exit_code == 0, checked.output
    with app.app_context():
        old_price = get_gateway().price_for("starter_monthly")

    text = catalog_file.read_text()
    edited = re.sub(r"(id = \"starter\"[\s\S]*?monthly_cents = )\d+", r"\g<1>777", text, count=1)
    assert edited != text
    catalog_file.write_text(edited)
    changed = make_app(database_url, CATALOG_PATH=str(catalog_file), SANDBOX_DELIVER_TO_SELF=False)
    try:
        result = run(changed, "check-catalog")
        assert result.exit_code == 1
        assert "price starter_monthly" in result.output and "777" in result.output

        synced = run(changed, "sync-catalog")
        assert (
            "created price" in synced.output and f"archived price {old_price.id}" in synced.output
        )
        assert "updated billing-portal configuration" in synced.output  # the new price
        assert run(changed, "check-catalog").exit_code == 0
        with changed.app_context():
            gateway = get_gateway()
            new_price = gateway.price_for("starter_monthly")
            assert new_price.unit_amount == 777 and new_price.id != old_price.id
            assert new_price.metadata.to_dict() == {"plan_id": "starter", "cycle": "monthly"}
            old = gateway.client.v1.prices.retrieve(old_price.id)
            assert old.active is False and old.lookup_key is None
            offered = {
                price
                for product in our_portal_configuration().features.subscription_update.products
                for price in product.prices
            }
            assert new_price.id in offered and old_price.id not in offered
    finally:
        with changed.app_context():
            db.engine.dispose()


def test_the_sandbox_syncs_the_catalog_on_first_use(app: Flask):
    with app.app_context():
        price = get_gateway().price_for("agency_yearly")
    assert price.lookup_key == "agency_yearly"
    assert run(app, "check-catalog").exit_code == 0


def test_processes_syncing_at_once_create_each_price_once(app: Flask, database_url: str):
    """Each gunicorn worker syncs on first use; together they must not double the catalog."""
    import threading

    others = [
        make_app(
            database_url, CATALOG_PATH=app.config["CATALOG_PATH"], SANDBOX_DELIVER_TO_SELF=False
        )
        for _ in range(2)
    ]
    errors: list[BaseException] = []

    def first_use(one: Flask) -> None:
        try:
            with one.app_context():
                get_gateway().price_for("starter_monthly")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first_use, args=(one,)) for one in (app, *others)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with app.app_context():
        gateway = get_gateway()
        packs = len(app.extensions["catalog"].packs)
        assert len(gateway.list_prices(active=True)) == 8 + packs
        assert len(gateway.list_products()) == 4 + packs
    for one in others:
        with one.app_context():
            db.engine.dispose()


def our_portal_configuration():
    configurations = get_gateway().list_portal_configurations()
    [ours] = [c for c in configurations if c.metadata and c.metadata.to_dict() == PORTAL_MARKER]
    return ours


def test_the_portal_configuration_follows_the_policy_and_drift_is_reported(
    app: Flask, catalog_file: Path, database_url: str
):
    assert run(app, "sync-catalog").exit_code == 0
    with app.app_context():
        features = our_portal_configuration().features
        update, cancel = features.subscription_update, features.subscription_cancel
        conditions = {c.type for c in update.schedule_at_period_end.conditions}
        assert conditions == {"decreasing_item_amount", "shortening_interval"}
        assert (update.proration_behavior, update.billing_cycle_anchor) == ("always_invoice", "now")
        assert len(update.products) == 4 and all(len(p.prices) == 2 for p in update.products)
        assert cancel.mode == "at_period_end" and cancel.cancellation_reason.enabled
        assert features.payment_method_update.enabled and features.invoice_history.enabled

    # Someone clicks in the Dashboard: downgrades now apply at once.
    with app.app_context():
        ours = our_portal_configuration()
        get_gateway().update_portal_configuration(
            ours.id,
            {"features": {"subscription_update": {"schedule_at_period_end": {"conditions": ""}}}},
        )
    drift = run(app, "check-catalog")
    assert drift.exit_code == 1
    assert "billing portal: subscription_update.schedule_at_period_end" in drift.output
    assert "updated billing-portal configuration" in run(app, "sync-catalog").output
    assert run(app, "check-catalog").exit_code == 0

    # The policy itself changes: cancellations at once. The configuration follows it.
    text = catalog_file.read_text().replace(
        'cancellations = "period_end"', 'cancellations = "immediately"'
    )
    catalog_file.write_text(text)
    changed = make_app(database_url, CATALOG_PATH=str(catalog_file), SANDBOX_DELIVER_TO_SELF=False)
    try:
        assert run(changed, "check-catalog").exit_code == 1
        assert run(changed, "sync-catalog").exit_code == 0
        with changed.app_context():
            assert our_portal_configuration().features.subscription_cancel.mode == "immediately"
    finally:
        with changed.app_context():
            db.engine.dispose()


def test_portal_sessions_name_our_configuration(app: Flask):
    from tests.sandbox.helpers import subscribe

    with app.app_context():
        sub = subscribe(app, get_gateway())
        from webapp.models import User

        user = User(email="ada@example.com", stripe_customer_id=sub.customer)
        user.set_password("correct horse battery")
        db.session.add(user)
        db.session.commit()
        from webapp import billing

        url = billing.create_portal_session(user, "http://localhost/account")
        portal_id = url.rsplit("/", 1)[1]
        session = get_gateway().sandbox_instance
        with session.store() as store:
            configuration = store.get("billing_portal.session", portal_id)["configuration"]
        assert configuration == our_portal_configuration().id


def test_a_hand_made_price_keeps_saying_its_plan_when_a_re_price_replaces_it(
    app: Flask, catalog_file: Path, database_url: str
):
    """Its subscribers stay on it; without a lookup key, its metadata is all that names it."""
    assert run(app, "sync-catalog").exit_code == 0
    with app.app_context():
        gateway = get_gateway()
        synced = gateway.price_for("starter_monthly")
        hand_made = gateway.client.v1.prices.create(
            params={
                "product": synced.product,
                "unit_amount": 499,
                "currency": "usd",
                "recurring": {"interval": "month"},
                "lookup_key": "starter_monthly",
                "transfer_lookup_key": True,  # someone made it in the Dashboard
            }
        )
        gateway.archive_price(synced.id)
    text = catalog_file.read_text()
    catalog_file.write_text(
        re.sub(r"(id = \"starter\"[\s\S]*?monthly_cents = )\d+", r"\g<1>555", text, count=1)
    )
    changed = make_app(database_url, CATALOG_PATH=str(catalog_file), SANDBOX_DELIVER_TO_SELF=False)
    try:
        output = run(changed, "sync-catalog").output
        assert f"wrote plan metadata on price {hand_made.id}" in output
        assert f"archived price {hand_made.id}" in output
        with changed.app_context():
            old = get_gateway().client.v1.prices.retrieve(hand_made.id)
            assert old.lookup_key is None and old.active is False
            assert old.metadata.to_dict() == {"plan_id": "starter", "cycle": "monthly"}
    finally:
        with changed.app_context():
            db.engine.dispose()
