"""Credit notes through the real SDK: before payment they lower what is due, after payment the
money goes back as a refund, to the customer's balance or outside Stripe; voids, lists, errors."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from tests.sandbox.helpers import event_types, events_of, raw, subscribe
from tests.sandbox.test_payments import failed_renewal, invoice_charge, payment_of, v1
from webapp.stripe_gateway import StripeGateway


def create(gateway: StripeGateway, **params: Any):
    return v1(gateway).credit_notes.create(params=params)


def tail_after(gateway: StripeGateway, event_type: str) -> list[str]:
    """The event types since the last one of `event_type` (excluded)."""
    types = event_types(gateway)
    last = len(types) - 1 - types[::-1].index(event_type)
    return types[last + 1 :]


# --- before payment: what is due goes down --------------------------------------------------


def test_a_note_on_an_open_invoice_lowers_what_is_due_and_voiding_restores_it(app, gateway):
    _sub, invoice_id = failed_renewal(app, gateway)
    before = gateway.retrieve_invoice(invoice_id)
    assert before.status == "open" and before.amount_remaining == 499
    line = before.lines.data[0]
    types_before = len(event_types(gateway))

    note = create(
        gateway,
        invoice=invoice_id,
        lines=[{"type": "invoice_line_item", "invoice_line_item": line.id, "amount": 200}],
        reason="order_change",
        memo="Goodwill",
        metadata={"ticket": "7"},
    )
    assert note.id.startswith("cn_") and note.object == "credit_note"
    assert note.status == "issued" and note.type == "pre_payment"
    assert (note.total, note.pre_payment_amount, note.post_payment_amount) == (200, 200, 0)
    assert note.invoice == invoice_id and note.customer == before.customer
    assert note.number == f"{before.number}-CN-01" and note.memo == "Goodwill"
    assert note.refunds == [] and note.customer_balance_transaction is None
    [credited] = note.lines.data
    assert credited.type == "invoice_line_item" and credited.invoice_line_item == line.id
    assert credited.amount == 200
    invoice = gateway.retrieve_invoice(invoice_id)
    assert invoice.status == "open" and invoice.pre_payment_credit_notes_amount == 200
    assert invoice.amount_due == invoice.amount_remaining == 299 and invoice.total == 499
    pi, _charge = invoice_charge(gateway, invoice_id)
    assert pi.amount == 299 and payment_of(gateway, invoice_id).amount_requested == 299
    assert event_types(gateway)[types_before:] == ["invoice.updated", "credit_note.created"]
    updated = events_of(gateway, "invoice.updated")[0]
    assert updated.data.previous_attributes.amount_due == 499

    voided = v1(gateway).credit_notes.void_credit_note(note.id)
    assert voided.status == "void" and voided.voided_at
    invoice = gateway.retrieve_invoice(invoice_id)
    assert invoice.pre_payment_credit_notes_amount == 0 and invoice.amount_remaining == 499
    assert v1(gateway).payment_intents.retrieve(pi.id).amount == 499
    assert tail_after(gateway, "credit_note.created") == ["invoice.updated", "credit_note.voided"]
    with pytest.raises(stripe.InvalidRequestError, match="already been voided"):
        v1(gateway).credit_notes.void_credit_note(note.id)


def test_crediting_all_that_is_due_marks_the_invoice_paid_with_nothing_charged(app, gateway):
    sub, invoice_id = failed_renewal(app, gateway)
    note = create(gateway, invoice=invoice_id, amount=499)
    assert note.type == "pre_payment" and note.lines.data[0].type == "custom_line_item"
    invoice = gateway.retrieve_invoice(invoice_id)
    assert invoice.status == "paid" and invoice.amount_paid == 0
    assert invoice.amount_remaining == 0 and invoice.pre_payment_credit_notes_amount == 499
    pi, _charge = invoice_charge(gateway, invoice_id)
    assert pi.status == "canceled" and payment_of(gateway, invoice_id).status == "canceled"
    assert gateway.retrieve_subscription(sub.id).status == "active"
    assert "invoice.paid" in tail_after(gateway, "invoice.payment_failed")


# --- after payment: the money goes somewhere ------------------------------------------------


def test_a_note_on_a_paid_invoice_refunds_credits_the_balance_and_records_the_rest(app, gateway):
    sub = subscribe(app, gateway, lookup_key="business_monthly")  # $39.99
    pi, charge = invoice_charge(gateway, sub.latest_invoice)
    types_before = len(event_types(gateway))

    note = create(
        gateway,
        invoice=sub.latest_invoice,
        amount=1000,
        refund_amount=500,
        credit_amount=300,
        out_of_band_amount=200,
    )
    assert note.type == "post_payment"
    assert (note.pre_payment_amount, note.post_payment_amount) == (0, 1000)
    assert note.out_of_band_amount == 200
    [refund] = note.refunds
    assert refund.amount_refunded == 500 and refund.type == "refund"
    made = v1(gateway).refunds.retrieve(refund.refund)
    assert made.amount == 500 and made.charge == charge.id and made.payment_intent == pi.id
    assert v1(gateway).charges.retrieve(charge.id).amount_refunded == 500
    customer = v1(gateway).customers.retrieve(sub.customer)
    assert customer.balance == -300
    [transaction] = v1(gateway).customers.balance_transactions.list(sub.customer).data
    assert transaction.id == note.customer_balance_transaction
    assert transaction.type == "credit_note" and transaction.amount == -300
    assert transaction.credit_note == note.id and transaction.ending_balance == -300
    invoice = gateway.retrieve_invoice(sub.latest_invoice)
    assert invoice.status == "paid" and invoice.amount_paid == 3999
    assert invoice.post_payment_credit_notes_amount == 1000
    assert invoice.pre_payment_credit_notes_amount == 0
    assert event_types(gateway)[types_before:] == [
        "refund.created",
        "charge.refunded",
        "invoice.updated",
        "customer.updated",
        "credit_note.created",
    ]
    # The balance pays the next invoice first.
    renewal_due = 3999 - 300
    from tests.sandbox.helpers import advance

    advance(app, days=32)
    renewal = gateway.retrieve_invoice(gateway.retrieve_subscription(sub.id).latest_invoice)
    assert renewal.amount_paid == renewal_due


def test_a_note_links_a_refund_already_made_instead_of_refunding_again(app, gateway):
    sub = subscribe(app, gateway, lookup_key="business_monthly")
    pi, charge = invoice_charge(gateway, sub.latest_invoice)
    cash = v1(gateway).refunds.create(params={"payment_intent": pi.id, "amount": 700})
    note = create(gateway, invoice=sub.latest_invoice, amount=700, refunds=[{"refund": cash.id}])
    assert [(r.refund, r.amount_refunded) for r in note.refunds] == [(cash.id, 700)]
    assert v1(gateway).charges.retrieve(charge.id).amount_refunded == 700  # no second refund
    with pytest.raises(stripe.InvalidRequestError) as twice:
        create(gateway, invoice=sub.latest_invoice, amount=100, refunds=[{"refund": cash.id}])
    assert twice.value.param == "refunds[0][amount_refunded]"


def test_a_note_on_a_paid_invoice_cannot_be_voided(app, gateway):
    sub = subscribe(app, gateway)
    note = create(gateway, invoice=sub.latest_invoice, amount=100, out_of_band_amount=100)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        v1(gateway).credit_notes.void_credit_note(note.id)
    assert refused.value.http_status == 400
    assert refused.value.user_message == (
        "You can only void a credit note if the associated invoice is open."
    )
    assert v1(gateway).credit_notes.retrieve(note.id).status == "issued"


# --- lists, retrieve, update ----------------------------------------------------------------


def test_notes_are_listed_by_invoice_and_customer_paged_retrieved_and_updated(app, gateway):
    first = subscribe(app, gateway)
    other = subscribe(app, gateway, key="2", email="grace@example.com")
    a = create(gateway, invoice=first.latest_invoice, amount=100, out_of_band_amount=100)
    b = create(gateway, invoice=first.latest_invoice, amount=50, credit_amount=50)
    c = create(gateway, invoice=other.latest_invoice, amount=10, out_of_band_amount=10)
    assert b.number.endswith("-CN-02")
    notes = v1(gateway).credit_notes
    by_invoice = notes.list(params={"invoice": first.latest_invoice})
    assert [n.id for n in by_invoice.data] == [b.id, a.id]
    assert [n.id for n in notes.list(params={"customer": other.customer}).data] == [c.id]
    page = notes.list(params={"limit": 1})
    assert page.has_more and [n.id for n in page.auto_paging_iter()] == [c.id, b.id, a.id]
    assert notes.retrieve(a.id).total == 100
    assert [line.amount for line in notes.line_items.list(a.id).data] == [100]
    with pytest.raises(stripe.InvalidRequestError) as missing:
        notes.retrieve("cn_nope")
    assert missing.value.http_status == 404 and missing.value.code == "resource_missing"

    updated = notes.update(a.id, params={"memo": "Sorry", "metadata": {"ticket": "9"}})
    assert updated.memo == "Sorry" and updated.metadata.to_dict() == {"ticket": "9"}
    event = events_of(gateway, "credit_note.updated")[0]
    assert event.data.object.id == a.id and event.data.previous_attributes.memo is None
    assert raw(notes.retrieve(a.id))["memo"] == "Sorry"


# --- errors: Stripe's 400s, nothing half-written --------------------------------------------


def test_invalid_notes_are_refused_and_change_nothing(app, gateway):
    sub = subscribe(app, gateway)  # $4.99, paid
    invoice_id = sub.latest_invoice
    _pi, charge = invoice_charge(gateway, invoice_id)

    def refused(**params: Any) -> stripe.InvalidRequestError:
        with pytest.raises(stripe.InvalidRequestError) as error:
            create(gateway, **params)
        assert error.value.http_status == 400
        return error.value

    # Paid: what goes back must be said where it goes (Stripe's words).
    error = refused(invoice=invoice_id, amount=200)
    assert error.user_message == (
        "The sum of credit amount, refund amount and out of band amount ($0.00) must equal "
        "the credit note amount ($2.00)."
    )
    error = refused(invoice=invoice_id, amount=200, refund_amount=100, credit_amount=50)
    assert "($1.50) must equal the credit note amount ($2.00)" in error.user_message
    # More than the invoice's total, at once or across notes.
    error = refused(invoice=invoice_id, amount=500, out_of_band_amount=500)
    assert error.param == "amount" and "remaining creditable amount ($4.99)" in error.user_message
    create(gateway, invoice=invoice_id, amount=400, out_of_band_amount=400)
    error = refused(invoice=invoice_id, amount=100, out_of_band_amount=100)
    assert "remaining creditable amount ($0.99)" in error.user_message
    # Shapes.
    line = gateway.retrieve_invoice(invoice_id).lines.data[0]
    error = refused(
        invoice=invoice_id,
        lines=[{"type": "invoice_line_item", "invoice_line_item": line.id, "quantity": 2}],
        out_of_band_amount=998,
    )
    assert error.param == "lines[0][quantity]"
    error = refused(
        invoice=invoice_id,
        lines=[{"type": "invoice_line_item", "invoice_line_item": "il_nope", "amount": 1}],
    )
    assert error.param == "lines[0][invoice_line_item]"
    assert refused(invoice=invoice_id).code == "parameter_missing"
    assert refused(amount=100).param == "invoice"
    assert refused(invoice=invoice_id, amount=-5).param == "amount"
    assert refused(invoice=invoice_id, amount=1, reason="because").param == "reason"
    assert refused(invoice=invoice_id, amount=1, tax_amounts="x").code == "parameter_unknown"
    for params, param in (
        ({"invoice": "in_nope", "amount": 1}, "invoice"),
        (
            {"invoice": invoice_id, "amount": 1, "refunds": [{"refund": "re_nope"}]},
            "refunds[0][refund]",
        ),
    ):
        with pytest.raises(stripe.InvalidRequestError) as unknown:
            create(gateway, **params)
        assert unknown.value.http_status == 404 and unknown.value.param == param

    assert v1(gateway).charges.retrieve(charge.id).amount_refunded == 0
    notes = v1(gateway).credit_notes.list(params={"invoice": invoice_id}).data
    assert [n.total for n in notes] == [400]
    assert gateway.retrieve_invoice(invoice_id).post_payment_credit_notes_amount == 400
    assert v1(gateway).customers.retrieve(sub.customer).balance == 0


def test_a_refund_larger_than_the_charge_has_left_is_refused_as_a_refund_would_be(app, gateway):
    sub = subscribe(app, gateway)
    pi, charge = invoice_charge(gateway, sub.latest_invoice)
    v1(gateway).refunds.create(params={"payment_intent": pi.id, "amount": 400})
    with pytest.raises(stripe.InvalidRequestError) as error:
        create(gateway, invoice=sub.latest_invoice, amount=200, refund_amount=200)
    assert error.value.code == "amount_too_large"
    assert v1(gateway).charges.retrieve(charge.id).amount_refunded == 400
    assert v1(gateway).credit_notes.list(params={"invoice": sub.latest_invoice}).data == []
