"""The billing history (account page, /account/invoices), through the site, the real SDK and the
sandbox: every invoice Stripe billed, newest first, with its discount, tax and what became of its
money, read from our copies kept current by invoice events (never from Stripe on page view)."""

from __future__ import annotations

import re

import pytest
import stripe
from sqlalchemy import text

from tests.billing.member import Member
from tests.billing.test_discount_credits import subscribe_with_code
from tests.conftest import AuthActions, sql
from tests.test_member_cache import eventually
from webapp.billing import history
from webapp.billing.stripe_facts import invoice_discount, invoice_tax
from webapp.extensions import db
from webapp.stripe_gateway import get_gateway


@pytest.fixture
def member(app, user_id):
    with app.app_context():
        yield Member(app, user_id)


def rows(html: str) -> list[dict[str, str]]:
    """The history table's invoices as {testid: text}."""
    found = []
    for row in re.findall(r'<tr data-testid="invoice-row".*?</tr>', html, re.S):
        cells = dict(
            re.findall(r'<t[dh][^>]*data-testid="invoice-(\w+)"[^>]*>(.*?)</t[dh]>', row, re.S)
        )
        cells["id"] = re.search(r'data-invoice-id="([^"]+)"', row).group(1)
        cells["links"] = " ".join(re.findall(r'data-testid="invoice-(hosted|pdf)"', row))
        found.append({k: re.sub(r"<[^>]+>|\s+", " ", v).strip() for k, v in cells.items()})
    return found


def stripe_invoices(member: Member) -> list:
    """Stripe's own list for the customer, newest first (as Stripe lists them)."""
    params = {"customer": member.customer_id(), "limit": 100}
    return list(get_gateway().client.v1.invoices.list(params=params).data)


def test_a_discounted_invoice_shows_its_discount_amount_and_links(app):
    user_id, customer = subscribe_with_code(
        app, "professional", "monthly", {"percent_off": 20, "duration": "once"}
    )
    client = app.test_client()
    AuthActions(app, client).login(email=f"discount{_last_serial(app, user_id)}@example.com")
    [shown] = rows(client.get("/account").get_data(as_text=True))
    with app.app_context():
        [invoice] = get_gateway().client.v1.invoices.list(params={"customer": customer}).data
    assert invoice.total_discount_amounts[0].amount == 260  # 20% of $12.99
    assert shown["id"] == invoice.id
    assert shown["number"] == invoice.number
    assert shown["amount"] == "$10.39"
    assert shown["discount"] == "-$2.60"
    assert shown["tax"] == "$0.00"
    assert shown["status"] == "Paid"
    # Whatever documents Stripe has for it (the sandbox makes no PDFs yet).
    assert invoice.hosted_invoice_url
    expected_links = ["hosted"] + (["pdf"] if invoice.invoice_pdf else [])
    assert shown["links"] == " ".join(expected_links)
    [(subtotal, discount, tax)] = sql(
        app,
        "select subtotal, total_discount, total_tax from invoices where user_id = :u",
        u=user_id,
    )
    assert (subtotal, discount, tax) == (1299, 260, 0)


def _last_serial(app, user_id) -> str:
    [(email,)] = sql(app, "select email from users where id = :id", id=user_id)
    return email.removeprefix("discount").removesuffix("@example.com")


def test_renewals_newest_first_across_pages(app, member, monkeypatch):
    member.subscribe("starter", "monthly")
    for _ in range(4):
        member.advance(31)
    expected = [invoice.id for invoice in stripe_invoices(member)]
    assert len(expected) == 5
    account = rows(member.client.get("/account").get_data(as_text=True))
    assert [row["id"] for row in account] == expected  # five fit on the account page
    assert 'data-testid="all-invoices"' not in member.client.get("/account").get_data(as_text=True)

    monkeypatch.setattr(history, "PER_PAGE", 2)
    monkeypatch.setattr("webapp.account.views.PER_PAGE", 2)
    seen = []
    for page in (1, 2, 3):
        html = member.client.get(f"/account/invoices?page={page}").get_data(as_text=True)
        seen += [row["id"] for row in rows(html)]
        assert ('data-testid="older-invoices"' in html) == (page < 3)
        assert ('data-testid="newer-invoices"' in html) == (page > 1)
    assert seen == expected
    assert all(row["status"] == "Paid" for row in account)


@pytest.mark.parametrize("page", ["0", "-1", "abc", "9", "1.5", "99999999999"])
def test_a_page_that_does_not_exist_is_a_clear_404(member, page):
    member.subscribe("starter", "monthly")
    response = member.client.get(f"/account/invoices?page={page}")
    assert response.status_code == 404
    assert "<html" in response.get_data(as_text=True).lower()


def test_no_invoices_yet(member):
    assert 'data-testid="no-invoices"' in member.client.get("/account").get_data(as_text=True)
    assert member.client.get("/account/invoices").status_code == 200


def test_refunds_show_on_the_cached_account_page(app, member):
    """The account page is cached per member; a refund changes only the invoice row (and the
    credits), and the page must show it at once."""
    member.subscribe("professional", "monthly")
    assert rows(member.client.get("/account").get_data(as_text=True))[0]["status"] == "Paid"
    [invoice] = stripe_invoices(member)
    v1 = get_gateway().client.v1
    [charge] = v1.charges.list(params={"customer": member.customer_id()}).data
    v1.refunds.create(params={"payment_intent": charge.payment_intent, "amount": 300})
    [shown] = rows(member.client.get("/account").get_data(as_text=True))
    assert shown["status"] == "Partially refunded ($3.00)"
    v1.refunds.create(params={"payment_intent": charge.payment_intent})
    [shown] = rows(member.client.get("/account").get_data(as_text=True))
    assert (shown["id"], shown["status"]) == (invoice.id, "Refunded")


def test_tax_and_discount_are_read_from_the_pinned_api_versions_fields():
    """`total_taxes` (API 2025-03-31 on; null when none was computed) and
    `total_discount_amounts`, on Stripe's own example invoice as the SDK parses it."""
    import json
    from pathlib import Path

    example = json.loads(Path("/work/shared/stripe/fixtures3.json").read_text())
    invoice = example["resources"]["invoice"]
    assert invoice_tax(stripe.Invoice.construct_from(invoice, "sk_test")) == 0  # null
    taxed = {
        **invoice,
        "total_taxes": [
            {
                "amount": 190,
                "tax_behavior": "exclusive",
                "taxability_reason": "standard_rated",
                "taxable_amount": 1000,
                "type": "tax_rate_details",
                "tax_rate_details": {"tax_rate": "txr_1"},
            },
            {
                "amount": 10,
                "tax_behavior": "inclusive",
                "taxability_reason": "standard_rated",
                "taxable_amount": 1000,
                "type": "tax_rate_details",
                "tax_rate_details": {"tax_rate": "txr_2"},
            },
        ],
        "total_discount_amounts": [
            {"amount": 100, "discount": "di_1"},
            {"amount": 50, "discount": "di_2"},
        ],
    }
    parsed = stripe.Invoice.construct_from(taxed, "sk_test")
    assert (invoice_tax(parsed), invoice_discount(parsed)) == (200, 150)


@pytest.mark.parametrize(
    ("action", "status"), [("void", "Void"), ("uncollectible", "Uncollectible")]
)
def test_an_open_invoice_that_is_voided_or_written_off_shows_so_at_once(member, action, status):
    """Stripe's own statuses of an invoice that was never paid."""
    member.subscribe("starter", "monthly", card="fails_at_renewal")
    member.advance(31)
    renewal = stripe_invoices(member)[0]
    assert renewal.status == "open"
    assert rows(member.client.get("/account").get_data(as_text=True))[0]["status"] == "Open"
    v1 = get_gateway().client.v1
    if action == "void":
        v1.invoices.void_invoice(renewal.id)
    else:
        v1.invoices.mark_uncollectible(renewal.id)
    [shown, first] = rows(member.client.get("/account").get_data(as_text=True))
    assert (shown["id"], shown["status"]) == (renewal.id, status)
    assert first["status"] == "Paid"


def test_an_invoice_changed_on_another_worker_shows_on_the_cached_account_page(
    app, member, other_worker
):
    """The account page is cached per member and worker; a change to an invoice alone (here a
    refund's amount, stored by a webhook on another worker) must drop it: the member cache
    watches `invoices`."""
    member.subscribe("starter", "monthly")
    assert rows(member.client.get("/account").get_data(as_text=True))[0]["status"] == "Paid"
    with other_worker.app_context():
        db.session.execute(
            text("update invoices set amount_refunded = amount_paid where user_id = :u"),
            {"u": member.user_id},
        )
        db.session.commit()
    # The `member` fixture holds one app context, so this test's requests share its session;
    # end that session's read transaction, as a real worker's next request starts afresh
    # (on SQLite in WAL mode it would keep reading the snapshot from before the refund).
    db.session.rollback()
    html = eventually(lambda: member.client.get("/account").get_data(as_text=True), "Refunded")
    assert rows(html)[0]["status"] == "Refunded"
