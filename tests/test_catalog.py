"""The catalog file: loaded, validated, and the single source of prices."""

import tomllib

import pytest

from webapp import create_app
from webapp.catalog import (
    CATALOG_PATH,
    CatalogError,
    UnknownPlan,
    format_money,
    load_catalog,
    parse_catalog,
)
from webapp.config import TestConfig

EXPECTED = {
    "starter": (1000, 499, 4990),
    "professional": (3000, 1299, 12990),
    "business": (10000, 3999, 39990),
    "agency": (30000, 9999, 99990),
}


def raw_catalog() -> dict:
    return tomllib.loads(CATALOG_PATH.read_text())


def test_catalog_has_the_four_plans_with_their_figures():
    catalog = load_catalog()
    assert list(catalog.plans) == list(EXPECTED)
    for plan_id, (credits, monthly, yearly) in EXPECTED.items():
        plan = catalog.plan(plan_id)
        assert plan.monthly_credits == credits
        assert plan.price("monthly").amount_cents == monthly
        assert plan.price("yearly").amount_cents == yearly
        assert plan.price("yearly").lookup_key == f"{plan_id}_yearly"
    assert catalog.price_by_lookup_key("professional_monthly").amount_cents == 1299


def test_trials_come_from_the_catalog():
    catalog = parse_catalog(raw_catalog())
    for plan in catalog.plans.values():
        assert plan.trial_period_days == 14
        assert 0 < plan.trial_credits < plan.monthly_credits
    data = raw_catalog()
    for raw in data["plans"]:
        raw.pop("trial_period_days"), raw.pop("trial_credits")
    assert {p.trial_period_days for p in parse_catalog(data).plans.values()} == {0}


def test_unknown_plan_and_cycle_raise():
    catalog = load_catalog()
    with pytest.raises(UnknownPlan):
        catalog.plan("gold")
    with pytest.raises(UnknownPlan):
        catalog.price("starter", "weekly")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c["plans"].pop(), "plans must be exactly"),
        (lambda c: c["plans"][0].update(monthly_cents="4.99"), "must be an integer"),
        (lambda c: c["plans"][0].update(monthly_cents=-1), "must be positive"),
        (lambda c: c["plans"][1].pop("monthly_credits"), "missing 'monthly_credits'"),
        (lambda c: c["plans"][1]["copy"].pop("name"), "copy is missing 'name'"),
        (lambda c: c.update(currency="eur"), "currency must be 'usd'"),
        (lambda c: c["plans"][0].update(yearly_cents=99999), "yearly price exceeds"),
        (lambda c: c["plans"][0].update(trial_period_days=731), "trial_period_days must be"),
        (lambda c: c["plans"][0].update(trial_period_days=-1), "trial_period_days must be"),
        (lambda c: c["plans"][0].update(trial_period_days="14"), "must be an integer"),
        (lambda c: c["plans"][0].update(trial_credits=1000), "below monthly_credits"),
        (
            lambda c: c["plans"][0].update(trial_period_days=0, trial_credits=10),
            "trial_credits without trial_period_days",
        ),
    ],
)
def test_bad_catalog_is_refused_with_a_clear_message(mutate, message):
    data = raw_catalog()
    mutate(data)
    with pytest.raises(CatalogError, match=message):
        parse_catalog(data)


def test_bad_catalog_file_stops_start_up(tmp_path):
    bad = tmp_path / "catalog.toml"
    bad.write_text("currency = 'usd'\n[[plans]]\nid = 'starter'\n")
    with pytest.raises(CatalogError, match=str(bad)):
        create_app(TestConfig(CATALOG_PATH=str(bad)))


@pytest.mark.parametrize(
    ("cents", "text"),
    [(1299, "$12.99"), (99990, "$999.90"), (0, "$0.00"), (123456789, "$1,234,567.89")],
)
def test_format_money(cents, text):
    assert format_money(cents) == text
