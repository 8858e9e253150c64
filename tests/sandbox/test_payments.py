"""Payments as objects: every paid invoice has a PaymentIntent, a Charge and an InvoicePayment;
refunds, disputes (test card 0259), voids and paying invoices, all through the real SDK."""

from __future__ import annotations

from typing import Any

import pytest
import stripe
from flask import Flask

from tests.sandbox.helpers import (
    advance,
    event_types,
    events_of,
    raw,
    subscribe,
    update_card,
)
from webapp.stripe_gateway import StripeGateway

DISPUTED_CARD = "4000000000000259"
FAILS_OFF_SESSION = "4000000000000341"


def v1(gateway: StripeGateway):
    return gateway.client.v1


def payment_of(gateway: StripeGateway, invoice_id: str) -> dict[str, Any]:
    """The invoice's (only) InvoicePayment, found the way billing code finds it."""
    listed = v1(gateway).invoice_payments.list(params={"invoice": invoice_id})
    assert len(listed.data) == 1
    return listed.data[0]


def invoice_charge(gateway: StripeGateway, invoice_id: str):
    payment = payment_of(gateway, invoice_id)
    pi = v1(gateway).payment_intents.retrieve(payment.payment.payment_intent)
    return pi, v1(gateway).charges.retrieve(pi.latest_charge)


def failed_renewal(app: Flask, gateway: StripeGateway) -> tuple[Any, str]:
    """A subscription whose renewal failed (card 0341): it and its open invoice's id."""
    sub = subscribe(app, gateway, card=FAILS_OFF_SESSION)
    advance(app, days=32)
    sub = gateway.retrieve_subscription(sub.id)
    assert sub.status == "past_due"
    return sub, sub.latest_invoice


# --- payments as objects --------------------------------------------------------------------


def test_a_paid_checkout_has_a_payment_intent_a_charge_and_an_invoice_payment(app, gateway):
    sub = subscribe(app, gateway)
    invoice = raw(gateway.retrieve_invoice(sub.latest_invoice))
    # basil: the invoice no longer names its charge or payment intent, nor says `paid`.
    assert not {"charge", "payment_intent", "paid", "payments"} & set(invoice)

    payment = payment_of(gateway, invoice["id"])
    assert payment.id.startswith("inpay_") and payment.invoice == invoice["id"]
    assert payment.status == "paid" and payment.is_default is True
    assert payment.amount_paid == payment.amount_requested == invoice["amount_paid"] == 499
    assert payment.status_transitions.paid_at == invoice["status_transitions"]["paid_at"]
    assert payment.payment.type == "payment_intent"

    pi, charge = invoice_charge(gateway, invoice["id"])
    assert pi.id.startswith("pi_") and pi.status == "succeeded"
    assert pi.amount == pi.amount_received == 499 and pi.customer == sub.customer
    assert "invoice" not in raw(pi) and "invoice" not in raw(charge)
    assert charge.id.startswith("ch_") and charge.payment_intent == pi.id
    assert (charge.amount, charge.amount_captured, charge.amount_refunded) == (499, 499, 0)
    assert charge.paid is True and charge.status == "succeeded" and charge.captured is True
    assert charge.refunded is False and charge.disputed is False
    assert charge.payment_method == sub.default_payment_method
    assert charge.payment_method_details.card.last4 == "4242"
    assert charge.billing_details.address.country is None
    assert "refunds" not in raw(charge)  # only when expanded (since 2022-11-15)

    types = event_types(gateway)
    order = [
        "invoice.finalized",
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.succeeded",
        "invoice_payment.paid",
        "invoice.paid",
        "invoice.payment_succeeded",
    ]
    assert [t for t in types if t in order] == order


def test_invoice_payments_are_included_only_when_expanded(app, gateway):
    sub = subscribe(app, gateway)
    invoice = v1(gateway).invoices.retrieve(
        sub.latest_invoice, params={"expand": ["payments.data.payment.payment_intent"]}
    )
    payments = invoice.payments.data
    assert len(payments) == 1 and payments[0].payment.payment_intent.object == "payment_intent"
    assert payments[0].payment.payment_intent.status == "succeeded"


def test_lists_find_payments_by_customer_intent_invoice_and_status(app, gateway):
    sub = subscribe(app, gateway)
    subscribe(app, gateway, key="2", email="other@example.com")
    pi, charge = invoice_charge(gateway, sub.latest_invoice)
    by_customer = v1(gateway).charges.list(params={"customer": sub.customer})
    assert [c.id for c in by_customer.data] == [charge.id]
    by_intent = v1(gateway).charges.list(params={"payment_intent": pi.id})
    assert [c.id for c in by_intent.data] == [charge.id]
    intents = v1(gateway).payment_intents.list(params={"customer": sub.customer})
    assert [p.id for p in intents.data] == [pi.id]
    # PaymentIntent → invoice, as billing code must go since basil.
    found = v1(gateway).invoice_payments.list(
        params={"payment": {"type": "payment_intent", "payment_intent": pi.id}}
    )
    assert [p.invoice for p in found.data] == [sub.latest_invoice]
    assert v1(gateway).invoice_payments.list(params={"status": "open"}).data == []
    assert len(v1(gateway).invoice_payments.list(params={"status": "paid"}).data) == 2
    one = v1(gateway).invoice_payments.retrieve(found.data[0].id)
    assert one.invoice == sub.latest_invoice
    with pytest.raises(stripe.InvalidRequestError) as missing:
        v1(gateway).charges.retrieve("ch_nope")
    assert missing.value.http_status == 404 and missing.value.code == "resource_missing"


def test_a_failed_renewal_leaves_a_failed_charge_and_payment_intent(app, gateway):
    _sub, invoice_id = failed_renewal(app, gateway)
    payment = payment_of(gateway, invoice_id)
    assert payment.status == "open" and payment.amount_paid is None
    pi, charge = invoice_charge(gateway, invoice_id)
    assert pi.status == "requires_payment_method" and pi.amount_received == 0
    assert pi.last_payment_error.code == "card_declined"
    assert pi.last_payment_error.charge == charge.id
    assert charge.status == "failed" and charge.paid is False and charge.amount_captured == 0
    assert charge.failure_code == "card_declined"
    assert charge.failure_message == "Your card was declined."
    types = event_types(gateway)
    tail = types[types.index("invoice.created", types.index("invoice.created") + 1) :]
    assert tail.index("charge.failed") < tail.index("payment_intent.payment_failed")
    assert tail.index("payment_intent.payment_failed") < tail.index("invoice.payment_failed")
    assert events_of(gateway, "charge.failed")[0].data.object.id == charge.id


# --- paying, voiding, writing off -----------------------------------------------------------


def test_paying_an_open_invoice_keeps_the_failed_attempt_and_recovers_the_subscription(
    app, gateway
):
    sub, invoice_id = failed_renewal(app, gateway)
    with pytest.raises(stripe.CardError) as declined:  # 0341 declines after its first charge
        v1(gateway).invoices.pay(invoice_id)
    assert declined.value.http_status == 402 and declined.value.code == "card_declined"
    pi = v1(gateway).payment_intents.retrieve(
        payment_of(gateway, invoice_id).payment.payment_intent
    )
    assert len(v1(gateway).charges.list(params={"payment_intent": pi.id}).data) == 2

    update_card(app, gateway, sub.customer)  # the portal pays open invoices with the new card
    paid = gateway.retrieve_invoice(invoice_id)
    assert paid.status == "paid" and paid.amount_remaining == 0
    pi = v1(gateway).payment_intents.retrieve(pi.id)
    assert pi.status == "succeeded" and pi.last_payment_error is None
    charges = v1(gateway).charges.list(params={"payment_intent": pi.id}).data
    assert [c.status for c in charges] == ["succeeded", "failed", "failed"]
    assert pi.latest_charge == charges[0].id
    assert payment_of(gateway, invoice_id).status == "paid"
    assert gateway.retrieve_subscription(sub.id).status == "active"
    with pytest.raises(stripe.InvalidRequestError, match="Invoice is already paid"):
        v1(gateway).invoices.pay(invoice_id)


def test_void_an_open_invoice(app, gateway):
    _sub, invoice_id = failed_renewal(app, gateway)
    voided = v1(gateway).invoices.void_invoice(invoice_id)
    assert voided.status == "void" and voided.status_transitions.voided_at
    payment = payment_of(gateway, invoice_id)
    assert payment.status == "canceled" and payment.status_transitions.canceled_at
    pi = v1(gateway).payment_intents.retrieve(payment.payment.payment_intent)
    assert pi.status == "canceled" and pi.cancellation_reason == "void_invoice"
    assert events_of(gateway, "invoice.voided")[0].data.object.id == invoice_id
    for again in (invoice_id, gateway.list_invoices(voided.customer)[-1].id):  # void, paid
        with pytest.raises(stripe.InvalidRequestError) as refused:
            v1(gateway).invoices.void_invoice(again)
        assert refused.value.http_status == 400 and "open" in str(refused.value)


def test_mark_uncollectible_then_pay_or_void(app, gateway):
    sub, invoice_id = failed_renewal(app, gateway)
    written_off = v1(gateway).invoices.mark_uncollectible(invoice_id)
    assert written_off.status == "uncollectible"
    assert written_off.status_transitions.marked_uncollectible_at
    assert written_off.status_details.uncollectible.reason == "user_forgiven"
    assert events_of(gateway, "invoice.marked_uncollectible")[0].data.object.id == invoice_id
    with pytest.raises(stripe.InvalidRequestError):
        v1(gateway).invoices.mark_uncollectible(invoice_id)
    update_card(app, gateway, sub.customer)  # pays open invoices, not written-off ones
    assert gateway.retrieve_invoice(invoice_id).status == "uncollectible"
    paid = v1(gateway).invoices.pay(invoice_id)  # the subscription's new default card
    assert paid.status == "paid" and "status_details" not in raw(paid)
    with pytest.raises(stripe.InvalidRequestError):
        v1(gateway).invoices.void_invoice(invoice_id)


# --- refunds --------------------------------------------------------------------------------


def test_partial_then_full_refund(app, gateway):
    sub = subscribe(app, gateway, lookup_key="business_monthly")
    pi, charge = invoice_charge(gateway, sub.latest_invoice)
    first = v1(gateway).refunds.create(
        params={
            "payment_intent": pi.id,
            "amount": 1000,
            "reason": "requested_by_customer",
            "metadata": {"ticket": "42"},
        }
    )
    assert first.id.startswith("re_") and first.status == "succeeded" and first.amount == 1000
    assert first.charge == charge.id and first.payment_intent == pi.id
    assert first.metadata.to_dict() == {"ticket": "42"}
    assert first.reason == "requested_by_customer"
    charge = v1(gateway).charges.retrieve(charge.id)
    assert charge.amount_refunded == 1000 and charge.refunded is False
    refunded_event = events_of(gateway, "charge.refunded")[0].data.object
    assert refunded_event.object == "charge" and refunded_event.amount_refunded == 1000
    assert events_of(gateway, "refund.created")[0].data.object.id == first.id

    rest = v1(gateway).refunds.create(params={"charge": charge.id})
    assert rest.amount == 3999 - 1000
    charge = v1(gateway).charges.retrieve(charge.id, params={"expand": ["refunds"]})
    assert charge.amount_refunded == 3999 and charge.refunded is True
    assert {r.id for r in charge.refunds.data} == {first.id, rest.id}
    # The invoice stays paid; the PaymentIntent keeps what it received.
    assert gateway.retrieve_invoice(sub.latest_invoice).status == "paid"
    assert v1(gateway).payment_intents.retrieve(pi.id).amount_received == 3999
    listed = v1(gateway).refunds.list(params={"payment_intent": pi.id})
    assert {r.id for r in listed.data} == {first.id, rest.id}
    assert v1(gateway).refunds.retrieve(first.id).amount == 1000
    assert len(v1(gateway).refunds.list(params={"charge": charge.id}).data) == 2

    with pytest.raises(stripe.InvalidRequestError) as again:
        v1(gateway).refunds.create(params={"charge": charge.id})
    assert again.value.code == "charge_already_refunded"
    assert again.value.user_message == f"Charge {charge.id} has already been refunded."


def test_refund_errors_are_stripe_s(app, gateway):
    sub = subscribe(app, gateway)
    _pi, charge = invoice_charge(gateway, sub.latest_invoice)
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        v1(gateway).refunds.create(params={"charge": charge.id, "amount": 500})
    assert too_much.value.code == "amount_too_large" and too_much.value.param == "amount"
    assert too_much.value.user_message == (
        "Refund amount ($5.00) is greater than unrefunded amount on charge ($4.99)"
    )
    with pytest.raises(stripe.InvalidRequestError) as neither:
        v1(gateway).refunds.create(params={"amount": 100})
    assert neither.value.code == "parameter_missing"
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        v1(gateway).refunds.create(params={"charge": charge.id, "bogus": "1"})
    assert unknown.value.code == "parameter_unknown"
    with pytest.raises(stripe.InvalidRequestError) as reason:
        v1(gateway).refunds.create(params={"charge": charge.id, "reason": "changed_mind"})
    assert reason.value.param == "reason"
    assert v1(gateway).charges.retrieve(charge.id).amount_refunded == 0


# --- disputes -------------------------------------------------------------------------------


def disputed_charge(app, gateway, key: str = "1", email: str = "ada@example.com"):
    sub = subscribe(app, gateway, card=DISPUTED_CARD, key=key, email=email)
    _pi, charge = invoice_charge(gateway, sub.latest_invoice)
    disputes = v1(gateway).disputes.list(params={"charge": charge.id}).data
    assert len(disputes) == 1
    return sub, charge, disputes[0]


def test_the_0259_card_pays_then_is_disputed_as_fraudulent(app, gateway):
    sub, charge, dispute = disputed_charge(app, gateway)
    assert gateway.retrieve_invoice(sub.latest_invoice).status == "paid"
    assert charge.disputed is True and charge.status == "succeeded"
    assert dispute.id.startswith("dp_") and dispute.reason == "fraudulent"
    assert dispute.status == "needs_response" and dispute.amount == charge.amount
    assert dispute.payment_intent == charge.payment_intent
    assert dispute.evidence_details.due_by > dispute.created
    withdrawn = dispute.balance_transactions
    assert len(withdrawn) == 1 and withdrawn[0].amount == -charge.amount
    types = event_types(gateway)
    assert types.index("charge.succeeded") < types.index("charge.dispute.created")
    assert types.index("charge.dispute.created") < types.index("charge.dispute.funds_withdrawn")
    assert events_of(gateway, "charge.dispute.created")[0].data.object.id == dispute.id
    by_intent = v1(gateway).disputes.list(params={"payment_intent": charge.payment_intent})
    assert [d.id for d in by_intent.data] == [dispute.id]
    with pytest.raises(stripe.InvalidRequestError) as refused:
        v1(gateway).refunds.create(params={"charge": charge.id})
    assert refused.value.code == "charge_disputed"


def test_winning_evidence_wins_and_reinstates_the_funds(app, gateway):
    _sub, _charge, dispute = disputed_charge(app, gateway)
    won = v1(gateway).disputes.update(
        dispute.id, params={"evidence": {"uncategorized_text": "winning_evidence"}}
    )
    assert won.status == "won" and won.evidence.uncategorized_text == "winning_evidence"
    assert won.evidence_details.submission_count == 1 and won.evidence_details.has_evidence
    assert [t.amount for t in won.balance_transactions] == [-won.amount, won.amount]
    types = event_types(gateway)
    assert types[-3:] == [
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_reinstated",
    ]
    assert events_of(gateway, "charge.dispute.closed")[0].data.object.status == "won"


def test_losing_evidence_loses_and_keeps_the_funds_withdrawn(app, gateway):
    _sub, _charge, dispute = disputed_charge(app, gateway)
    lost = v1(gateway).disputes.update(
        dispute.id, params={"evidence": {"uncategorized_text": "losing_evidence"}}
    )
    assert lost.status == "lost" and len(lost.balance_transactions) == 1
    assert event_types(gateway)[-2:] == ["charge.dispute.updated", "charge.dispute.closed"]
    with pytest.raises(stripe.InvalidRequestError):
        v1(gateway).disputes.update(
            dispute.id, params={"evidence": {"uncategorized_text": "winning_evidence"}}
        )


def test_staged_evidence_waits_and_closing_loses(app, gateway):
    _sub, _charge, dispute = disputed_charge(app, gateway)
    staged = v1(gateway).disputes.update(
        dispute.id,
        params={"evidence": {"uncategorized_text": "winning_evidence"}, "submit": False},
    )
    assert staged.status == "needs_response" and staged.evidence_details.has_evidence
    assert staged.evidence_details.submission_count == 0
    closed = v1(gateway).disputes.close(dispute.id)
    assert closed.status == "lost"
    assert events_of(gateway, "charge.dispute.closed")[0].data.object.status == "lost"
    assert "charge.dispute.funds_reinstated" not in event_types(gateway)
    with pytest.raises(stripe.InvalidRequestError):
        v1(gateway).disputes.close(dispute.id)
    assert v1(gateway).disputes.retrieve(dispute.id).status == "lost"
    assert len(v1(gateway).disputes.list().data) == 1


def test_every_charge_on_the_0259_card_is_disputed(app, gateway):
    sub, _charge, _dispute = disputed_charge(app, gateway)
    advance(app, days=32)
    renewal = gateway.retrieve_subscription(sub.id).latest_invoice
    _pi, charge = invoice_charge(gateway, renewal)
    assert charge.disputed is True
    assert len(v1(gateway).disputes.list().data) == 2
