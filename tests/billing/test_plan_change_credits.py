"""What plan changes, renewals, refunds, disputes and voids do to credits, one story at a time.

Each story runs through the site, the portal and the real SDK against the sandbox, with
webhooks delivered as Stripe sends them; the ledger is what the README's rules say.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.billing.member import Member, price_id
from tests.conftest import sql
from webapp.catalog import parse_catalog
from webapp.extensions import db
from webapp.models import CreditEntry
from webapp.stripe_catalog import sync_catalog
from webapp.stripe_gateway import get_gateway
from webapp.templating import format_date


@pytest.fixture
def member(app, user_id):
    with app.app_context():
        yield Member(app, user_id)


def plan_row(app) -> tuple:
    [row] = sql(
        app,
        "select plan_id, cycle, status, pending_plan_id from subscriptions "
        "where status in ('active', 'past_due', 'trialing')",
    )
    return tuple(row)


def test_up_then_down_leaves_starter_plus_what_the_upgrade_paid_for(app, member):
    """Starter → Agency → Starter in minutes once left 30,000 credits for a net $4.99."""
    member.subscribe("starter", "monthly")
    assert member.balance() == 1000
    member.switch("agency", "monthly")  # applies now: a new period, paid in full less Starter's
    assert plan_row(app) == ("agency", "monthly", "active", None)
    upgrade = member.live().latest_invoice
    paid = get_gateway().retrieve_invoice(upgrade).amount_paid
    assert paid >= 9999 - 499  # Agency's month, less the unused part of Starter's
    member.switch("starter", "monthly")  # a downgrade waits for the period end: no money back
    assert plan_row(app) == ("agency", "monthly", "active", "starter")
    # Agency's month was paid for; Starter's month was handed back but for its first seconds.
    assert 30_000 <= member.balance() <= 30_000 + 1000
    before = member.balance()
    member.advance(31)  # the switch happens; the renewal is a Starter month
    assert plan_row(app) == ("starter", "monthly", "active", None)
    assert member.balance() == before + 1000


def test_a_downgrade_applied_mid_period_takes_back_what_went_back(app, member):
    """From the Dashboard (the API), prorated: Agency for the ten days it stayed paid."""
    member.subscribe("agency", "monthly")
    member.advance(10)
    sub = member.live()
    item = sub["items"]["data"][0]
    get_gateway().client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": item.id, "price": price_id("starter", "monthly")}],
            "proration_behavior": "always_invoice",
        },
    )
    start, end = item.current_period_start, item.current_period_end
    used = (member_now(member) - start) / (end - start)  # about a third of the month
    expected_agency = 30_000 - int((30_000 - 1000) * (1 - used))
    assert abs(member.balance() - expected_agency) <= 1
    assert plan_row(app)[:2] == ("starter", "monthly")


def member_now(member: Member) -> int:
    with get_gateway().sandbox_instance.store() as store:
        return store.now()


def test_a_cycle_switch_starts_a_new_period_with_its_own_first_month(app, member):
    member.subscribe("professional", "monthly")
    member.advance(15)
    member.switch("professional", "yearly")  # an upgrade: now, a new yearly period
    assert plan_row(app)[:2] == ("professional", "yearly")
    # Half of the monthly period went back as credit: half its credits go back too.
    assert 3000 + 1400 <= member.balance() <= 3000 + 1600
    before = member.balance()
    member.advance(31)  # the yearly period's second month begins
    assert member.balance() == before + 3000


def test_renewals_after_a_portal_downgrade_grant_the_plan_billed(app, member):
    """Real Stripe gives renewal lines the subscription's metadata (Business, from checkout)."""
    member.subscribe("business", "monthly")
    html = member.switch("starter", "monthly")
    assert "Switches to Starter" in html
    account = member.client.get("/account").get_data(as_text=True)
    assert 'data-testid="pending-change"' in account and "Switches to Starter" in account
    member.advance(31)
    assert plan_row(app) == ("starter", "monthly", "active", None)
    assert member.balance() == 10_000 + 1000
    member.advance(31)
    assert member.balance() == 10_000 + 2000


def test_a_re_priced_plan_keeps_its_subscribers_on_their_plan(app, member):
    """A re-price moves the lookup key and archives the old price; the price's metadata stays."""
    member.subscribe("business", "monthly")
    member.switch("starter", "monthly")
    member.advance(31)
    old_price = member.live()["items"]["data"][0].price.id
    raw = get_catalog_dict(app)
    raw["plans"][0]["monthly_cents"] = 599  # Starter costs more from now on
    changes = sync_catalog(get_gateway(), parse_catalog(raw))
    assert any("archived price" in line for line in changes)
    sub = member.live()
    price = sub["items"]["data"][0].price
    assert price.id == old_price and price.active is False and price.lookup_key is None
    member.portal("cancel", reason="other")  # any update: our copy is stored again
    member.portal("resume")
    assert plan_row(app)[:2] == ("starter", "monthly")
    before = member.balance()
    member.advance(31)
    assert member.balance() == before + 1000


def get_catalog_dict(app) -> dict:
    import tomllib

    from webapp.catalog import CATALOG_PATH

    return tomllib.loads(CATALOG_PATH.read_text())


@pytest.mark.parametrize("share", [1, 0.5])
def test_a_refund_takes_back_its_share_of_the_credits(app, member, share):
    member.subscribe("starter", "monthly")
    invoice = get_gateway().retrieve_invoice(member.live().latest_invoice)
    [payment] = get_gateway().invoice_payments(invoice.id)
    refunded = int(invoice.amount_paid * share)
    get_gateway().client.v1.refunds.create(
        params={"payment_intent": payment.payment.payment_intent, "amount": refunded}
    )
    # 1,000 credits x what stayed paid, rounded down: never more than was paid for.
    assert member.balance() == 1000 * (invoice.total - refunded) // invoice.total
    [entry] = sql(app, "select kind, description from credit_entries where amount < 0")
    assert entry[0] == "refund" and entry[1].startswith(f"Refund of invoice {invoice.number}")


def test_a_dispute_takes_credits_back_and_a_won_one_gives_them_back(app, member):
    member.subscribe("professional", "monthly", card="disputed")
    assert member.balance() == 0  # paid, then disputed at once: the money is held
    client = get_gateway().client.v1
    [dispute] = client.disputes.list(params={"limit": 10}).data
    client.disputes.update(
        dispute.id, params={"evidence": {"uncategorized_text": "winning_evidence"}}
    )
    assert member.balance() == 3000


def test_a_lost_dispute_keeps_them_taken_back_and_the_balance_can_go_below_zero(
    app, member, user_id
):
    member.subscribe("professional", "monthly", card="disputed")
    db.session.add(
        CreditEntry(user_id=user_id, amount=-1200, type="usage", kind="usage", description="used")
    )
    db.session.commit()
    client = get_gateway().client.v1
    [dispute] = client.disputes.list(params={"limit": 10}).data
    client.disputes.update(
        dispute.id, params={"evidence": {"uncategorized_text": "losing_evidence"}}
    )
    assert member.balance() == -1200
    page = member.client.get("/account").get_data(as_text=True)
    assert 'data-testid="credit-balance">-1,200<' in page
    assert 'data-testid="negative-balance"' in page


def test_a_failed_renewal_buys_nothing_and_voiding_it_keeps_it_so(app, member):
    member.subscribe("starter", "monthly", card="fails_at_renewal")
    member.advance(31)
    assert plan_row(app)[2] == "past_due" and member.balance() == 1000
    [open_invoice] = [
        i for i in get_gateway().list_invoices(member.customer_id()) if i.status == "open"
    ]
    get_gateway().client.v1.invoices.void_invoice(open_invoice.id)
    assert member.balance() == 1000
    assert sql(app, "select status from invoices where id = :id", id=open_invoice.id) == [("void",)]


def test_cancel_at_shows_when_the_plan_ends(app, member):
    """Flexible billing mode (the default since 2025-09-30) cancels with `cancel_at` alone."""
    member.subscribe("starter", "monthly")
    member.portal("cancel", reason="too_expensive")
    sub = member.live()
    assert sub.cancel_at and sub.cancel_at_period_end is False
    page = member.client.get("/account").get_data(as_text=True)
    ends = format_date(datetime.fromtimestamp(sub.cancel_at, UTC))
    assert f"Your plan is set to end on {ends}" in page and "Renews on" not in page
