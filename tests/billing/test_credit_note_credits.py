"""Credit notes and credits, through the site, the real SDK and the sandbox's webhooks.

README rule 4: money that goes back takes back what it bought, pro rata. A credit note on a paid
invoice sends money back three ways (a refund, the customer's balance, outside Stripe), each
taking back that invoice's credits; one before payment means less was ever paid, so the
invoice buys less. The same money is never counted twice, and an event delivered twice changes
nothing.
"""

from __future__ import annotations

import pytest

from tests.billing.member import Member
from tests.billing_helpers import post_event, sandbox_events
from tests.conftest import sql
from webapp.stripe_gateway import get_gateway

STARTER = 1000  # Starter's monthly credits, for $4.99


@pytest.fixture
def member(app, user_id):
    with app.app_context():
        yield Member(app, user_id)


def v1():
    return get_gateway().client.v1


def paid_invoice(member: Member):
    """A Starter member's paid first invoice."""
    member.subscribe("starter", "monthly")
    assert member.balance() == STARTER
    return get_gateway().retrieve_invoice(member.live().latest_invoice)


def kept(total: int, back: int) -> int:
    """The credits that stay: Starter's month x what stayed paid, rounded down."""
    return STARTER * (total - back) // total


def taken_back(app) -> list[tuple[int, str]]:
    return [
        tuple(row)
        for row in sql(
            app, "select amount, description from credit_entries where amount < 0 order by id"
        )
    ]


@pytest.mark.parametrize("where", ["refund_amount", "credit_amount", "out_of_band_amount"])
def test_a_credit_note_on_a_paid_invoice_takes_back_its_share(app, member, where):
    invoice = paid_invoice(member)
    v1().credit_notes.create(params={"invoice": invoice.id, "amount": 200, where: 200})
    assert member.balance() == kept(invoice.total, 200) == 599
    [(amount, description)] = taken_back(app)
    assert amount == 599 - STARTER
    # A refund's own events arrive first and say so; the others are the note's.
    cause = "Refund of" if where == "refund_amount" else "Credit note on"
    assert description.startswith(f"{cause} invoice {invoice.number}")


def test_notes_add_up_and_a_note_for_everything_takes_everything(app, member):
    invoice = paid_invoice(member)
    v1().credit_notes.create(params={"invoice": invoice.id, "amount": 100, "credit_amount": 100})
    assert member.balance() == kept(invoice.total, 100)
    v1().credit_notes.create(
        params={"invoice": invoice.id, "amount": 399, "out_of_band_amount": 399}
    )
    assert member.balance() == 0


def test_a_note_and_the_cash_refund_it_made_or_links_are_counted_once(app, member):
    invoice = paid_invoice(member)
    [payment] = get_gateway().invoice_payments(invoice.id)
    payment_intent = payment.payment.payment_intent
    # A note whose refund_amount made the refund: the charge shows it, the note lists it.
    v1().credit_notes.create(params={"invoice": invoice.id, "amount": 100, "refund_amount": 100})
    assert member.balance() == kept(invoice.total, 100)
    # A cash refund first, then a note that links it: still the same 150 cents.
    cash = v1().refunds.create(params={"payment_intent": payment_intent, "amount": 150})
    assert member.balance() == kept(invoice.total, 250)
    v1().credit_notes.create(
        params={"invoice": invoice.id, "amount": 150, "refunds": [{"refund": cash.id}]}
    )
    assert member.balance() == kept(invoice.total, 250)
    [charge] = get_gateway().charges_of(payment_intent)
    assert charge.amount_refunded == 250


def test_an_event_delivered_twice_changes_nothing(app, member):
    invoice = paid_invoice(member)
    app.extensions["stripe_sandbox"].faults.set_webhooks("duplicate")
    v1().credit_notes.create(
        params={"invoice": invoice.id, "amount": 200, "out_of_band_amount": 200}
    )
    assert member.balance() == kept(invoice.total, 200)
    entries = sql(app, "select count(*) from credit_entries")
    # The same note again under another event id (Stripe sends `credit_note.updated` too).
    [created] = sandbox_events(app, ("credit_note.created",))
    again = {**created, "id": "evt_again_" + created["id"][4:], "type": "credit_note.updated"}
    assert post_event(member.client, again).status_code == 200
    assert post_event(member.client, again).status_code == 200
    assert member.balance() == kept(invoice.total, 200)
    assert sql(app, "select count(*) from credit_entries") == entries


def test_a_note_on_a_paid_invoice_cannot_be_voided_so_its_credits_stay_taken_back(app, member):
    """Stripe voids a credit note only while its invoice is open (see the sandbox's source)."""
    invoice = paid_invoice(member)
    note = v1().credit_notes.create(
        params={"invoice": invoice.id, "amount": 200, "credit_amount": 200}
    )
    with pytest.raises(Exception, match="associated invoice is open"):
        v1().credit_notes.void_credit_note(note.id)
    assert member.balance() == kept(invoice.total, 200)


# --- before payment: less was paid, so the invoice buys less ------------------------------------


def open_renewal(member: Member):
    """A Starter member whose renewal failed: the open renewal invoice."""
    member.subscribe("starter", "monthly", card="fails_at_renewal")
    member.advance(31)
    [invoice] = [i for i in get_gateway().list_invoices(member.customer_id()) if i.status == "open"]
    assert member.balance() == STARTER
    return invoice


def pay_with_a_new_card(member: Member) -> None:
    member.portal("card", card_number="4242 4242 4242 4242", expiry="12 / 34", cvc="123")


def test_a_note_before_payment_means_less_was_paid_so_fewer_credits(app, member):
    invoice = open_renewal(member)
    v1().credit_notes.create(params={"invoice": invoice.id, "amount": 200})
    assert member.balance() == STARTER  # open: nothing bought yet
    pay_with_a_new_card(member)
    paid = get_gateway().retrieve_invoice(invoice.id)
    assert paid.status == "paid" and paid.amount_paid == 299
    # $2.99 of $4.99 paid: the renewal buys 599 credits, not 1,000.
    assert member.balance() == STARTER + kept(invoice.total, 200)


def test_a_note_voided_before_payment_takes_nothing(app, member):
    invoice = open_renewal(member)
    note = v1().credit_notes.create(params={"invoice": invoice.id, "amount": 200})
    v1().credit_notes.void_credit_note(note.id)
    pay_with_a_new_card(member)
    assert get_gateway().retrieve_invoice(invoice.id).amount_paid == 499
    assert member.balance() == 2 * STARTER


def test_an_invoice_credited_in_full_before_payment_buys_nothing(app, member):
    invoice = open_renewal(member)
    v1().credit_notes.create(params={"invoice": invoice.id, "amount": invoice.amount_due})
    paid = get_gateway().retrieve_invoice(invoice.id)
    assert paid.status == "paid" and paid.amount_paid == 0  # Stripe calls it paid: nothing due
    assert member.live().status == "active"
    assert member.balance() == STARTER
    assert sql(app, "select status from invoices where id = :id", id=invoice.id) == [("paid",)]


def test_a_note_before_payment_then_a_full_refund_takes_everything(app, member):
    invoice = open_renewal(member)
    v1().credit_notes.create(params={"invoice": invoice.id, "amount": 200})
    pay_with_a_new_card(member)
    [payment] = get_gateway().invoice_payments(invoice.id)
    v1().refunds.create(params={"payment_intent": payment.payment.payment_intent})
    assert member.balance() == STARTER  # the first month stays; the renewal bought nothing
