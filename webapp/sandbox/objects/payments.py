"""Money that moves: PaymentIntents, Charges, the InvoicePayments linking them to invoices,
Refunds, Disputes and the balance transactions a dispute carries.

Shapes follow Stripe's examples (fixtures3.json) and the SDK's classes (`_payment_intent.py`,
`_charge.py`, `_invoice_payment.py`, `_refund.py`, `_dispute.py`). Since basil (2025-03-31) the
invoice has no `charge`/`payment_intent`/`paid` and the PaymentIntent and Charge have no
`invoice`: the InvoicePayment is the only link (docs.stripe.com/changelog/basil/2025-03-31/
add-support-for-multiple-partial-payments-on-invoices).
"""

from __future__ import annotations

from typing import Any

from webapp.sandbox.objects.common import EMPTY_ADDRESS
from webapp.sandbox.store import new_id

STATEMENT_DESCRIPTOR = "LLMGEN SANDBOX"

# Assumption: Stripe names an invoice's PaymentIntent after why the invoice was made
# ("Subscription creation" is what invoices of new subscriptions show); the others follow suit.
PAYMENT_DESCRIPTIONS = {
    "subscription_create": "Subscription creation",
    "subscription_cycle": "Subscription cycle",
    "subscription_update": "Subscription update",
}


def payment_intent(
    now: int, *, amount: int, currency: str, customer_id: str, billing_reason: str
) -> dict[str, Any]:
    """The PaymentIntent Stripe makes when it finalizes an invoice that has something to pay."""
    pi_id = new_id("pi_")
    return {
        "id": pi_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic",
        "client_secret": f"{pi_id}_secret_{new_id('', 25)}",
        "confirmation_method": "automatic",
        "created": now,
        "currency": currency,
        "customer": customer_id,
        "customer_account": None,
        "description": PAYMENT_DESCRIPTIONS.get(billing_reason, "Invoice payment"),
        "excluded_payment_method_types": None,
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "managed_payments": None,
        "metadata": {},
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": None,
        "payment_method_configuration_details": None,
        "payment_method_options": {
            "card": {
                "installments": None,
                "mandate_options": None,
                "network": None,
                "request_three_d_secure": "automatic",
            }
        },
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": "off_session",
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "requires_payment_method",
        "transfer_data": None,
        "transfer_group": None,
    }


def three_d_secure_result(now: int) -> dict[str, Any]:
    """`payment_method_details.card.three_d_secure` of a charge the cardholder authenticated
    in a challenge (SDK `_charge.py`, `ThreeDSecure`)."""
    return {
        "authentication_flow": "challenge",
        "electronic_commerce_indicator": "05",
        "exemption_indicator": None,
        "exemption_indicator_applied": False,
        "result": "authenticated",
        "result_reason": None,
        "transaction_id": new_id("", 32).lower(),
        "version": "2.2.0",
    }


def _card_details(pm: dict[str, Any]) -> dict[str, Any]:
    card = pm["card"]
    return {
        "amount_authorized": None,
        "authorization_code": None,
        "brand": card["brand"],
        "checks": dict(card["checks"]),
        "country": card["country"],
        "exp_month": card["exp_month"],
        "exp_year": card["exp_year"],
        "extended_authorization": {"status": "disabled"},
        "fingerprint": card["fingerprint"],
        "funding": card["funding"],
        "incremental_authorization": {"status": "unavailable"},
        "installments": None,
        "last4": card["last4"],
        "mandate": None,
        "multicapture": {"status": "unavailable"},
        "network": card["brand"],
        "network_token": {"used": False},
        "network_transaction_id": new_id("", 15).upper(),
        "overcapture": {"maximum_amount_capturable": 0, "status": "unavailable"},
        "regulated_status": card["regulated_status"],
        "three_d_secure": None,
        "transaction_link_id": None,
        "wallet": None,
    }


def charge(
    now: int,
    *,
    payment_intent_obj: dict[str, Any],
    pm: dict[str, Any],
    failure: tuple[str, str | None, str] | None = None,
    three_d_secure: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One attempt to take a PaymentIntent's money with a card; `failure` is the card's
    (code, decline_code, message) when the issuer says no; `three_d_secure` the outcome of
    the challenge the cardholder completed for it."""
    amount = payment_intent_obj["amount"]
    paid = failure is None
    if paid:
        outcome = {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "risk_score": 20,
            "seller_message": "Payment complete.",
            "type": "authorized",
        }
    else:
        outcome = {
            "advice_code": "do_not_try_again" if failure and failure[1] else None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "declined_by_network",
            "reason": failure[1] if failure else None,
            "risk_level": "normal",
            "risk_score": 20,
            "seller_message": "The bank did not return any further details with this decline.",
            "type": "issuer_declined",
        }
    return {
        "id": new_id("ch_"),
        "object": "charge",
        "amount": amount,
        "amount_captured": amount if paid else 0,
        "amount_refunded": 0,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        # The sandbox keeps no balance ledger: no balance transactions to point at.
        "balance_transaction": None,
        "billing_details": {
            "address": dict(EMPTY_ADDRESS),
            "email": pm["billing_details"]["email"],
            "name": pm["billing_details"]["name"],
            "phone": None,
            "tax_id": None,
        },
        "calculated_statement_descriptor": STATEMENT_DESCRIPTOR,
        "captured": paid,
        "created": now,
        "currency": payment_intent_obj["currency"],
        "customer": payment_intent_obj["customer"],
        "description": payment_intent_obj["description"],
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": failure[0] if failure else None,
        "failure_message": failure[2] if failure else None,
        "fraud_details": {},
        "livemode": False,
        "metadata": {},
        "on_behalf_of": None,
        "outcome": outcome,
        "paid": paid,
        "payment_intent": payment_intent_obj["id"],
        "payment_method": pm["id"],
        "payment_method_details": {
            "card": {**_card_details(pm), "three_d_secure": three_d_secure},
            "type": "card",
        },
        "receipt_email": None,
        "receipt_number": None,
        "receipt_url": None,
        "refunded": False,
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "succeeded" if paid else "failed",
        "transfer_data": None,
        "transfer_group": None,
    }


def invoice_payment(
    now: int, *, invoice_obj: dict[str, Any], payment_intent_id: str
) -> dict[str, Any]:
    """The default InvoicePayment Stripe creates when it finalizes an invoice."""
    return {
        "id": new_id("inpay_"),
        "object": "invoice_payment",
        "amount_paid": None,
        "amount_requested": invoice_obj["amount_remaining"],
        "created": now,
        "currency": invoice_obj["currency"],
        "invoice": invoice_obj["id"],
        "is_default": True,
        "livemode": False,
        "payment": {"payment_intent": payment_intent_id, "type": "payment_intent"},
        "status": "open",
        "status_transitions": {"canceled_at": None, "paid_at": None},
    }


def refund(
    now: int,
    *,
    charge_obj: dict[str, Any],
    amount: int,
    reason: str | None,
    metadata: dict[str, str],
) -> dict[str, Any]:
    """A card refund: Stripe reports it `succeeded` at once (card refunds are reversals)."""
    return {
        "id": new_id("re_"),
        "object": "refund",
        "amount": amount,
        "balance_transaction": None,
        "charge": charge_obj["id"],
        "created": now,
        "currency": charge_obj["currency"],
        "customer": None,
        "customer_account": None,
        "destination_details": {
            "card": {
                "reference": None,
                "reference_status": "pending",
                "reference_type": "acquirer_reference_number",
                "type": "refund",
            },
            "type": "card",
        },
        "metadata": metadata,
        "payment_intent": charge_obj["payment_intent"],
        "payment_method": charge_obj["payment_method"],
        "reason": reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "succeeded",
        "transfer_reversal": None,
    }


EVIDENCE_FIELDS = (
    "access_activity_log",
    "billing_address",
    "cancellation_policy",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "customer_communication",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "customer_signature",
    "duplicate_charge_documentation",
    "duplicate_charge_explanation",
    "duplicate_charge_id",
    "product_description",
    "receipt",
    "refund_policy",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "service_date",
    "service_documentation",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_documentation",
    "shipping_tracking_number",
    "uncategorized_file",
    "uncategorized_text",
)


def dispute(now: int, *, charge_obj: dict[str, Any], reason: str, due_by: int) -> dict[str, Any]:
    """A chargeback on a charge, waiting for the merchant's evidence."""
    card = charge_obj["payment_method_details"]["card"]
    return {
        "id": new_id("dp_"),
        "object": "dispute",
        "amount": charge_obj["amount"],
        "balance_transactions": [],
        "charge": charge_obj["id"],
        "created": now,
        "currency": charge_obj["currency"],
        "enhanced_eligibility_types": [],
        "evidence": {**dict.fromkeys(EVIDENCE_FIELDS), "enhanced_evidence": {}},
        "evidence_details": {
            "due_by": due_by,
            "enhanced_eligibility": {},
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        # A chargeback whose funds were withdrawn can no longer be refunded.
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "payment_intent": charge_obj["payment_intent"],
        "payment_method_details": {
            "card": {
                "brand": card["brand"],
                "case_type": "chargeback",
                "network": card["network"],
                "network_reason_code": "10.4",  # Visa's "other fraud, card-absent environment"
            },
            "type": "card",
        },
        "reason": reason,
        "status": "needs_response",
    }


def balance_transaction(
    now: int, *, amount: int, fee: int, currency: str, description: str, source: str, category: str
) -> dict[str, Any]:
    """A balance transaction shown inside a dispute (funds withdrawn or reinstated)."""
    return {
        "id": new_id("txn_"),
        "object": "balance_transaction",
        "amount": amount,
        "available_on": now,
        "balance_type": "payments",
        "created": now,
        "currency": currency,
        "description": description,
        "exchange_rate": None,
        "fee": fee,
        "fee_details": (
            [
                {
                    "amount": fee,
                    "application": None,
                    "currency": currency,
                    "description": "Dispute fee",
                    "type": "stripe_fee",
                }
            ]
            if fee
            else []
        ),
        "net": amount - fee,
        "reporting_category": category,
        "source": source,
        "status": "available",
        "type": "adjustment",
    }
