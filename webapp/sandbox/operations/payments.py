"""Collecting an invoice (PaymentIntent → Charge → InvoicePayment), giving money back (refunds),
chargebacks (disputes), and writing invoices off (void, uncollectible)."""

from __future__ import annotations

import copy
from typing import Any

from webapp.sandbox import objects
from webapp.sandbox.operations.cards import (
    AUTHENTICATION_REQUIRED,
    card_failure,
    needs_authentication,
)
from webapp.sandbox.operations.invoicing import invoice_payments
from webapp.sandbox.store import Store, diff, new_id, public_view
from webapp.sandbox.wire import StripeAPIError, invalid, refused

RETRY_AFTER_SECONDS = 3 * 86400  # when Stripe's smart retries would try a failed renewal again
DISPUTE_RESPONSE_SECONDS = 7 * 86400  # time given to answer a dispute (Stripe: 7 to 21 days)
# Assumption: Stripe's US dispute fee ($15, stripe.com/pricing), withdrawn with the disputed
# amount; the reinstatement returns the amount only.
DISPUTE_FEE = 1500
WINNING_EVIDENCE = "winning_evidence"
LOSING_EVIDENCE = "losing_evidence"


# --- collecting an invoice ------------------------------------------------------------------


def pay_invoice(
    store: Store,
    invoice: dict[str, Any],
    pm: dict[str, Any] | None,
    *,
    off_session: bool,
    authenticated: bool = False,
) -> bool:
    """Try to collect an open (or uncollectible) invoice with `pm`; True when it is paid.

    Events as Stripe sends them for an invoice payment: `charge.succeeded`,
    `payment_intent.succeeded`, `invoice_payment.paid`, `invoice.paid`,
    `invoice.payment_succeeded`; or `charge.failed`, `payment_intent.payment_failed`,
    `invoice.payment_failed`. A card that needs 3-D Secure pays only once the cardholder has
    completed a challenge for this payment (`authenticated`); until then the payment waits
    for them (`_require_action`).
    """
    now = store.now()
    invoice["attempted"] = True
    invoice["attempt_count"] += 1
    pi_id = invoice.get("_payment_intent")
    if pi_id is None:  # nothing to pay (a credit covered it): paid at once, no PaymentIntent
        _mark_paid(store, invoice, 0, now)
        return True
    pi = store.get("payment_intent", pi_id)
    if pm is None:
        # Assumption: with no card on file there is nothing to charge, so no Charge either.
        invoice["next_payment_attempt"] = None
        store.save(invoice)
        store.emit("invoice.payment_failed", invoice)
        return False
    if needs_authentication(pm) and not authenticated:
        _require_action(store, invoice, pi, pm, off_session=off_session)
        return False
    failure = card_failure(pm)
    pm["_charges"] = pm.get("_charges", 0) + 1
    store.save(pm)
    charge = objects.charge(
        now,
        payment_intent_obj=pi,
        pm=pm,
        failure=failure,
        three_d_secure=objects.three_d_secure_result(now) if authenticated else None,
    )
    charge["_invoice"] = invoice["id"]
    pi.update(latest_charge=charge["id"], payment_method=pm["id"])
    if failure is not None:
        code, decline_code, message = failure
        pi.update(
            status="requires_payment_method",
            next_action=None,
            last_payment_error=_card_error(charge, pm, code, decline_code, message),
        )
        store.save(charge)
        store.emit("charge.failed", charge)
        store.save(pi)
        store.emit("payment_intent.payment_failed", pi)
        invoice["next_payment_attempt"] = now + RETRY_AFTER_SECONDS if off_session else None
        store.save(invoice)
        store.emit("invoice.payment_failed", invoice)
        return False
    pi.update(
        status="succeeded", amount_received=pi["amount"], last_payment_error=None, next_action=None
    )
    store.save(charge)
    store.emit("charge.succeeded", charge)
    store.save(pi)
    store.emit("payment_intent.succeeded", pi)
    for payment in invoice_payments(store, invoice):
        if payment["payment"]["payment_intent"] == pi["id"] and payment["status"] == "open":
            payment.update(status="paid", amount_paid=pi["amount"])
            payment["status_transitions"]["paid_at"] = now
            store.save(payment)
            store.emit("invoice_payment.paid", payment)
    _mark_paid(store, invoice, pi["amount"], now)
    if pm.get("_disputes"):
        open_dispute(store, charge)
    return True


def _card_error(
    charge: dict[str, Any], pm: dict[str, Any], code: str, decline_code: str | None, message: str
) -> dict[str, Any]:
    """A PaymentIntent's `last_payment_error` for a card the issuer refused."""
    return {
        "advice_code": None,
        "charge": charge["id"],
        "code": code,
        "decline_code": decline_code,
        "doc_url": f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}",
        "message": message,
        "network_advice_code": None,
        "network_decline_code": None,
        "param": None,
        "payment_method": public_view(pm),
        "payment_method_type": "card",
        "type": "card_error",
    }


def _require_action(
    store: Store,
    invoice: dict[str, Any],
    pi: dict[str, Any],
    pm: dict[str, Any],
    *,
    off_session: bool,
) -> None:
    """The card needs 3-D Secure and nobody has completed a challenge for this payment.

    "When an invoice's payment requires additional action, invoice.payment_action_required
    and invoice.payment_failed events are sent and the status of the PaymentIntent is
    requires_action" (docs.stripe.com/billing/subscriptions/webhooks, "Handling payments that
    require additional action"). The customer completes it on the hosted invoice page
    (`hosted_invoice_url`: "a button for the customer to complete the payment",
    support.stripe.com/questions/completing-a-next-action-for-paymentintents-created-with-
    one-off-invoices).

    Assumptions: the issuer first refuses the unauthenticated charge with
    `authentication_required` (so a failed Charge and `charge.failed`, as an off-session
    charge on this card is declined with that code); `next_action` is Stripe.js's
    `use_stripe_sdk` 3-D Secure step, pointing at the hosted invoice page, the sandbox's only
    place to complete it; the retry date is set as for any failed renewal.
    """
    now = store.now()
    code, decline_code, message = AUTHENTICATION_REQUIRED
    charge = objects.charge(now, payment_intent_obj=pi, pm=pm, failure=AUTHENTICATION_REQUIRED)
    charge["_invoice"] = invoice["id"]
    store.save(charge)
    store.emit("charge.failed", charge)
    pi.update(
        status="requires_action",
        latest_charge=charge["id"],
        payment_method=pm["id"],
        last_payment_error=_card_error(charge, pm, code, decline_code, message),
        next_action={
            "type": "use_stripe_sdk",
            "use_stripe_sdk": {
                "type": "three_d_secure_redirect",
                "stripe_js": invoice.get("hosted_invoice_url"),
                "source": new_id("src_"),
            },
        },
    )
    store.save(pi)
    store.emit("payment_intent.requires_action", pi)
    invoice["next_payment_attempt"] = now + RETRY_AFTER_SECONDS if off_session else None
    store.save(invoice)
    store.emit("invoice.payment_action_required", invoice)
    store.emit("invoice.payment_failed", invoice)


def fail_authentication(store: Store, invoice: dict[str, Any], pm: dict[str, Any]) -> None:
    """The cardholder failed (or refused) the 3-D Secure challenge: the PaymentIntent needs
    a new payment method, as Stripe reports it (`payment_intent_authentication_failure`)."""
    pi = store.get("payment_intent", invoice["_payment_intent"])
    pi.update(
        status="requires_payment_method",
        next_action=None,
        payment_method=None,
        last_payment_error={
            "advice_code": None,
            "code": "payment_intent_authentication_failure",
            "doc_url": "https://stripe.com/docs/error-codes/payment-intent-authentication-failure",
            "message": AUTHENTICATION_FAILED,
            "network_advice_code": None,
            "network_decline_code": None,
            "param": None,
            "payment_method": public_view(pm),
            "payment_method_type": "card",
            "type": "invalid_request_error",
        },
    )
    store.save(pi)
    store.emit("payment_intent.payment_failed", pi)


# Stripe's message for a failed 3-D Secure challenge (seen in payment_intent.payment_failed
# payloads: docs of integrations that log them).
AUTHENTICATION_FAILED = (
    "The provided PaymentMethod has failed authentication. You can provide "
    "payment_method_data or a new PaymentMethod to attempt to fulfill this PaymentIntent again."
)


def _mark_paid(
    store: Store, invoice: dict[str, Any], amount: int, paid_at: int | None = None
) -> None:
    """Settle the invoice; `paid_at` is the moment of the payment that settled it, so the
    invoice and its invoice payment show the same second (Stripe's paid_at of both)."""
    invoice.update(
        status="paid",
        amount_paid=invoice["amount_paid"] + amount,
        amount_remaining=0,
        next_payment_attempt=None,
    )
    invoice.pop("status_details", None)
    invoice["status_transitions"]["paid_at"] = store.now() if paid_at is None else paid_at
    store.save(invoice)
    store.emit("invoice.paid", invoice)
    store.emit("invoice.payment_succeeded", invoice)


def default_payment_method(
    store: Store, customer: dict[str, Any], sub: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The card Stripe charges: the subscription's default, else the customer's."""
    pm_id = (sub or {}).get("default_payment_method") or customer["invoice_settings"][
        "default_payment_method"
    ]
    return store.find(pm_id) if pm_id else None


def invoice_subscription(store: Store, invoice: dict[str, Any]) -> dict[str, Any] | None:
    sub_id = ((invoice.get("parent") or {}).get("subscription_details") or {}).get("subscription")
    return store.find(sub_id) if sub_id else None


def after_invoice_paid(store: Store, invoice: dict[str, Any]) -> None:
    """A subscription waiting on this invoice recovers: past_due → active."""
    from webapp.sandbox.operations.changes import apply_pending_update

    sub = invoice_subscription(store, invoice)
    if sub is None or sub["latest_invoice"] != invoice["id"]:
        return
    if sub.get("pending_update"):
        apply_pending_update(store, sub)
        return
    if sub["status"] == "past_due":
        before = copy.deepcopy(sub)
        sub["status"] = "active"
        store.save(sub)
        store.emit("customer.subscription.updated", sub, diff(before, sub))


def pay_open_invoices(store: Store, customer: dict[str, Any], pm: dict[str, Any]) -> None:
    """A new card settles the customer's open invoices; past_due subscriptions recover."""
    for invoice in reversed(store.query("invoice", customer=customer["id"])):
        if invoice["status"] != "open" or invoice.get("_preview"):
            continue
        if pay_invoice(store, invoice, pm, off_session=False):
            after_invoice_paid(store, invoice)


# --- refunds ----------------------------------------------------------------------------------


def _money(amount: int) -> str:
    return f"${amount / 100:,.2f}"


def refund_charge(
    store: Store,
    charge: dict[str, Any],
    *,
    amount: int | None,
    reason: str | None,
    metadata: dict[str, str],
) -> dict[str, Any]:
    """Give back `amount` (default: all that is left) of a charge.

    Errors as Stripe words them (seen in integrations' logs): `charge_already_refunded`
    "Charge ch_… has already been refunded.", `charge_disputed` "Charge ch_… has been charged
    back; cannot issue a refund.", `amount_too_large` "Refund amount ($X) is greater than
    unrefunded amount on charge ($Y)". The invoice is not touched: it stays `paid`
    (docs.stripe.com/invoicing/integration/workflow-transitions has no way out of `paid`).
    """
    if charge["status"] != "succeeded":
        raise invalid(
            f"Charge {charge['id']} has not been captured, so it cannot be refunded.",
            param="charge",
            code="charge_not_refundable",
        )
    remaining = charge["amount_captured"] - charge["amount_refunded"]
    if remaining <= 0:
        raise invalid(
            f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded"
        )
    if charge["disputed"] and not _refundable_while_disputed(store, charge):
        raise invalid(
            f"Charge {charge['id']} has been charged back; cannot issue a refund.",
            code="charge_disputed",
        )
    amount = remaining if amount is None else amount
    if amount > remaining:
        raise invalid(
            f"Refund amount ({_money(amount)}) is greater than unrefunded amount on charge "
            f"({_money(remaining)})",
            param="amount",
            code="amount_too_large",
        )
    refund = objects.refund(
        store.now(), charge_obj=charge, amount=amount, reason=reason, metadata=metadata
    )
    store.save(refund)
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
    store.save(charge)
    # Both fire for card refunds since 2024-10-28 (docs.stripe.com/changelog/acacia/2024-10-28/
    # refund-webhook-update); their order is undocumented: the refund first, as its cause.
    store.emit("refund.created", refund)
    store.emit("charge.refunded", charge)
    return refund


def _refundable_while_disputed(store: Store, charge: dict[str, Any]) -> bool:
    return all(
        dispute["is_charge_refundable"]
        for dispute in store.query("dispute")
        if dispute["charge"] == charge["id"]
    )


# --- disputes ---------------------------------------------------------------------------------


def open_dispute(store: Store, charge: dict[str, Any]) -> dict[str, Any]:
    """Test card 0259: the cardholder's bank disputes the payment as fraudulent and the funds
    are withdrawn (`charge.dispute.created`, `charge.dispute.funds_withdrawn`)."""
    now = store.now()
    dispute = objects.dispute(
        now, charge_obj=charge, reason="fraudulent", due_by=now + DISPUTE_RESPONSE_SECONDS
    )
    dispute["balance_transactions"].append(
        objects.balance_transaction(
            now,
            amount=-charge["amount"],
            fee=DISPUTE_FEE,
            currency=charge["currency"],
            description=f"Chargeback withdrawal for {charge['id']}",
            source=dispute["id"],
            category="dispute",
        )
    )
    store.save(dispute)
    charge["disputed"] = True
    store.save(charge)
    store.emit("charge.dispute.created", dispute)
    store.emit("charge.dispute.funds_withdrawn", dispute)
    return dispute


OPEN_DISPUTE = {"needs_response", "warning_needs_response"}


def update_dispute(
    store: Store,
    dispute: dict[str, Any],
    *,
    evidence: dict[str, Any] | None,
    metadata: dict[str, str] | None,
    submit: bool,
) -> dict[str, Any]:
    """Stage or submit evidence (`submit`, default true: docs.stripe.com/api/disputes/update).

    In test mode the evidence text `winning_evidence` wins the dispute and `losing_evidence`
    loses it (docs.stripe.com/testing, "Disputes"). Stripe closes such a dispute shortly after
    the submission; the sandbox closes it in the same request, so the answer already shows
    `won` or `lost`.
    """
    before = copy.deepcopy(dispute)
    if (evidence is not None or submit) and dispute["status"] not in OPEN_DISPUTE:
        # Assumption: Stripe's wording for evidence sent after the response window.
        raise refused(
            f"This dispute is {dispute['status'].replace('_', ' ')}: evidence can no "
            "longer be updated or submitted.",
            param="evidence",
        )
    for key, value in (evidence or {}).items():
        dispute["evidence"][key] = value or None
    details = dispute["evidence_details"]
    details["has_evidence"] = any(
        value for key, value in dispute["evidence"].items() if key != "enhanced_evidence"
    )
    if metadata is not None:
        dispute["metadata"] = metadata
    if submit:
        details["submission_count"] += 1
        dispute["status"] = (
            "warning_under_review" if dispute["status"].startswith("warning") else "under_review"
        )
    if dispute != before:
        store.save(dispute)
        store.emit("charge.dispute.updated", dispute, diff(before, dispute))
    text = dispute["evidence"].get("uncategorized_text")
    if submit and text == WINNING_EVIDENCE:
        close_dispute(store, dispute, "won")
    elif submit and text == LOSING_EVIDENCE:
        close_dispute(store, dispute, "lost")
    return dispute


def close_dispute(store: Store, dispute: dict[str, Any], outcome: str) -> dict[str, Any]:
    """End a dispute: `won` gives the money back (`charge.dispute.funds_reinstated`), `lost`
    keeps it withdrawn; both send `charge.dispute.closed`."""
    if dispute["status"] in ("won", "lost", "warning_closed"):
        # Assumption: Stripe's wording for closing a dispute twice is undocumented.
        raise refused(f"The dispute {dispute['id']} is already closed.")
    if dispute["status"].startswith("warning"):
        outcome = "warning_closed"
    now = store.now()
    dispute["status"] = outcome
    if outcome == "won":
        charge = store.get("charge", dispute["charge"])
        dispute["balance_transactions"].append(
            objects.balance_transaction(
                now,
                amount=dispute["amount"],
                fee=0,
                currency=dispute["currency"],
                description=f"Chargeback reversal for {charge['id']}",
                source=dispute["id"],
                category="dispute_reversal",
            )
        )
    store.save(dispute)
    store.emit("charge.dispute.closed", dispute)
    if outcome == "won":
        store.emit("charge.dispute.funds_reinstated", dispute)
    return dispute


# --- writing invoices off ---------------------------------------------------------------------


def void_invoice(store: Store, invoice: dict[str, Any]) -> dict[str, Any]:
    """open/uncollectible → void (docs.stripe.com/invoicing/integration/workflow-transitions);
    its PaymentIntent is canceled and its InvoicePayment with it."""
    if invoice["status"] not in ("open", "uncollectible") or invoice.get("_preview"):
        # Assumption: the transition table allows only these two; Stripe's wording for the
        # refusal is undocumented.
        raise refused(
            "You can only void an invoice whose status is `open` or `uncollectible`; this "
            f"invoice is `{invoice['status']}`.",
            param="invoice",
        )
    now = store.now()
    invoice["status"] = "void"
    invoice.pop("status_details", None)
    invoice["status_transitions"]["voided_at"] = now
    invoice["next_payment_attempt"] = None
    if pi_id := invoice.get("_payment_intent"):
        pi = store.get("payment_intent", pi_id)
        if pi["status"] != "succeeded":
            pi.update(status="canceled", canceled_at=now, cancellation_reason="void_invoice")
            store.save(pi)
            store.emit("payment_intent.canceled", pi)
        for payment in invoice_payments(store, invoice):
            if payment["status"] == "open":
                payment["status"] = "canceled"
                payment["status_transitions"]["canceled_at"] = now
                store.save(payment)
    store.save(invoice)
    store.emit("invoice.voided", invoice)
    return invoice


def mark_uncollectible(store: Store, invoice: dict[str, Any]) -> dict[str, Any]:
    """open → uncollectible; it can still be paid or voided afterwards."""
    if invoice["status"] != "open" or invoice.get("_preview"):
        raise refused(
            "You can only mark an invoice uncollectible when its status is `open`; this "
            f"invoice is `{invoice['status']}`.",
            param="invoice",
        )
    invoice["status"] = "uncollectible"
    invoice["next_payment_attempt"] = None
    invoice["status_transitions"]["marked_uncollectible_at"] = store.now()
    # endive: why it is uncollectible, shown only while it is (docs.stripe.com/changelog/
    # endive/2026-09-30/invoice-uncollectible-status-detail).
    invoice["status_details"] = {"uncollectible": {"reason": "user_forgiven"}}
    store.save(invoice)
    store.emit("invoice.marked_uncollectible", invoice)
    return invoice


def pay_invoice_now(
    store: Store, invoice: dict[str, Any], pm_id: str | None, *, off_session: bool
) -> dict[str, Any]:
    """`POST /v1/invoices/{id}/pay`: collect an open or uncollectible invoice now."""
    if invoice.get("_preview"):
        raise refused("You cannot pay a preview invoice.", param="invoice")
    if invoice["status"] == "paid":
        raise refused("Invoice is already paid", param="invoice")
    if invoice["status"] not in ("open", "uncollectible"):
        raise refused(f"You cannot pay an invoice with status `{invoice['status']}`.")
    customer = store.get("customer", invoice["customer"])
    if pm_id:
        pm: dict[str, Any] | None = store.get("payment_method", pm_id, param="payment_method")
    else:
        pm = default_payment_method(store, customer, invoice_subscription(store, invoice))
    if pay_invoice(store, invoice, pm, off_session=off_session):
        after_invoice_paid(store, invoice)
        return invoice
    pi = store.find(invoice.get("_payment_intent") or "") or {}
    if pi.get("status") == "requires_action":
        raise _action_required()
    error = pi.get("last_payment_error") or {}
    raise _payment_error(error)


def _action_required() -> StripeAPIError:
    """What `POST /v1/invoices/{id}/pay` answers when the payment waits for 3-D Secure (Stripe's
    wording, quoted in github.com/stripe/stripe-node/issues/628)."""
    from webapp.sandbox.operations.cards import CardError

    return CardError(
        "This payment requires additional user action before it can be completed "
        "successfully. Payment can be completed using the PaymentIntent associated with the "
        "invoice. For more details see: "
        "https://stripe.com/docs/billing/subscriptions/payment#handling-action-required",
        "invoice_payment_intent_requires_action",
        keep_changes=True,
    )


def _payment_error(error: dict[str, Any]) -> StripeAPIError:
    from webapp.sandbox.operations.cards import CardError

    if not error:
        return invalid(
            "This customer has no attached payment source or default payment method.",
            code="invoice_no_payment_method_types",
        )
    # The failed attempt (its charge and events) stays, as on Stripe.
    return CardError(error["message"], error["code"], error.get("decline_code"), keep_changes=True)
