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
    assert first.output.count("created product") == 4
    assert first.output.count("created price") == 8
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
        assert run(changed, "check-catalog").exit_code == 0
        with changed.app_context():
            gateway = get_gateway()
            new_price = gateway.price_for("starter_monthly")
            assert new_price.unit_amount == 777 and new_price.id != old_price.id
            old = gateway.client.v1.prices.retrieve(old_price.id)
            assert old.active is False and old.lookup_key is None
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
        assert len(gateway.list_prices(active=True)) == 8
        assert len(gateway.list_products()) == 4
    for one in others:
        with one.app_context():
            db.engine.dispose()
