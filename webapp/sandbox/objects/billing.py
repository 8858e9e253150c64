"""Subscriptions, their items, invoices and invoice lines."""

from __future__ import annotations

from typing import Any

from webapp.sandbox.objects.common import add_interval, list_object
from webapp.sandbox.store import new_id


def subscription_item(
    now: int, *, subscription_id: str, price_id: str, quantity: int, start: int, end: int
) -> dict[str, Any]:
    """A subscription item as stored: `price` holds the Price's id; `views` shows the Price as
    it is now (and the legacy `plan` view of it) wherever the item is shown."""
    return {
        "id": new_id("si_", 14),
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": now,
        "current_period_end": end,
        "current_period_start": start,
        "discounts": [],
        "metadata": {},
        "price": price_id,
        "quantity": quantity,
        "subscription": subscription_id,
        "tax_rates": [],
    }


def billing_mode(mode: str, now: int, proration_discounts: str | None = None) -> dict[str, Any]:
    """`billing_mode` as the SDK types it (`{type, flexible, updated_at}`).

    Assumption (undocumented): a subscription born flexible shows `flexible` with Stripe's
    default `proration_discounts` ("included") and `updated_at` = its creation time, the moment
    the mode was adopted; a classic one shows both null (Stripe's example shows no `updated_at`).
    """
    if mode == "flexible":
        return {
            "flexible": {"proration_discounts": proration_discounts or "included"},
            "type": "flexible",
            "updated_at": now,
        }
    return {"flexible": None, "type": "classic", "updated_at": None}


def subscription(
    now: int,
    *,
    customer_id: str,
    price_obj: dict[str, Any],
    quantity: int = 1,
    metadata: dict[str, Any],
    payment_method_id: str | None,
    mode: str = "flexible",
    proration_discounts: str | None = None,
) -> dict[str, Any]:
    sub_id = new_id("sub_")
    interval = price_obj["recurring"]["interval"]
    count = price_obj["recurring"]["interval_count"]
    end = add_interval(now, interval, count)
    item = subscription_item(
        now, subscription_id=sub_id, price_id=price_obj["id"], quantity=quantity, start=now, end=end
    )
    return {
        "id": sub_id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": now,
        "billing_cycle_anchor_config": None,
        "billing_mode": billing_mode(mode, now, proration_discounts),
        "billing_schedules": [],
        "billing_thresholds": None,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": "charge_automatically",
        "created": now,
        "currency": price_obj["currency"],
        "customer": customer_id,
        "customer_account": None,
        "days_until_due": None,
        "default_payment_method": payment_method_id,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "ended_at": None,
        "invoice_settings": {
            "account_tax_ids": None,
            "custom_fields": None,
            "description": None,
            "footer": None,
            "issuer": {"type": "self"},
        },
        "items": list_object([item], f"/v1/subscription_items?subscription={sub_id}"),
        "latest_invoice": None,
        "livemode": False,
        "managed_payments": None,
        "metadata": metadata,
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": now,
        "status": "active",
        "test_clock": None,
        "transfer_data": None,
        "trial_end": None,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": None,
        # Private: pending invoice items (prorations) waiting for the next invoice, as line
        # specs (see `invoice_line`).
        "_pending_lines": [],
    }


def line_spec(
    *,
    description: str,
    amount: int,
    price: dict[str, Any],
    quantity: int,
    start: int,
    end: int,
    item_id: str,
    proration: bool = False,
) -> dict[str, Any]:
    """What an invoice line will say, kept until the line is made (pending prorations wait in
    this form on the subscription). Prorations are invoice items (`ii_…`), as on Stripe."""
    return {
        "description": description,
        "amount": amount,
        "price": price["id"],
        "product": price["product"],
        "currency": price["currency"],
        "unit_amount_decimal": str(amount if proration else price["unit_amount"]),
        "quantity": quantity,
        "start": start,
        "end": end,
        "item": item_id,
        "proration": proration,
        "invoice_item": new_id("ii_") if proration else None,
    }


def one_time_line(invoice_id: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A line of an invoice with no subscription: an invoice item's (`ii_…`), whose `parent`
    is `invoice_item_details` (SDK `_invoice_line_item.py`, Parent.InvoiceItemDetails)."""
    line = invoice_line(invoice_id, "", spec)
    line["parent"] = {
        "invoice_item_details": {
            "invoice_item": spec["invoice_item"] or new_id("ii_"),
            "proration": False,
            "proration_details": {"credited_items": None},
            "subscription": None,
        },
        "subscription_item_details": None,
        "type": "invoice_item_details",
    }
    return line


def invoice_line(invoice_id: str, subscription_id: str, spec: dict[str, Any]) -> dict[str, Any]:
    """An invoice line as stored; `views` fills in what Stripe shows live (`metadata`).

    The top-level `subscription` is kept as null: basil moved it to
    `parent.subscription_item_details.subscription` and deprecated it, the SDK still declares
    the slot and Stripe's example shows it null (docs.stripe.com/changelog/basil/2025-03-31/
    adds-new-parent-field-to-invoicing-objects).
    """
    proration = spec["proration"]
    return {
        "id": new_id("il_"),
        "object": "line_item",
        "amount": spec["amount"],
        "currency": spec["currency"],
        "description": spec["description"],
        "discount_amounts": [],
        # Proration invoice items are not discountable (docs.stripe.com/billing/subscriptions/
        # prorations, "Prorations and discounts").
        "discountable": not proration,
        "discounts": [],
        "invoice": invoice_id,
        "livemode": False,
        "metadata": {},
        "parent": {
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": spec["invoice_item"],
                "proration": proration,
                "proration_details": {"credited_items": None},
                "subscription": subscription_id,
                "subscription_item": spec["item"],
            },
            "type": "subscription_item_details",
        },
        "period": {"end": spec["end"], "start": spec["start"]},
        "pretax_credit_amounts": [],
        "pricing": {
            "price_details": {"price": spec["price"], "product": spec["product"]},
            "type": "price_details",
            "unit_amount_decimal": spec["unit_amount_decimal"],
        },
        "quantity": spec["quantity"],
        "quantity_decimal": str(spec["quantity"]),
        "subscription": None,
        "subtotal": spec["amount"],
        "taxes": [],
    }


def invoice(
    now: int,
    *,
    invoice_id: str,
    customer_obj: dict[str, Any],
    subscription_obj: dict[str, Any] | None,
    billing_reason: str,
    lines: list[dict[str, Any]],
    period_start: int,
    period_end: int,
) -> dict[str, Any]:
    """An invoice; with `subscription_obj` None one of no subscription (`parent` null, as a
    payment-mode Checkout Session's post-payment invoice has)."""
    total = sum(line["amount"] for line in lines)
    parent = (
        {
            "quote_details": None,
            "subscription_details": {
                "metadata": subscription_obj["metadata"],
                "subscription": subscription_obj["id"],
            },
            "type": "subscription_details",
        }
        if subscription_obj is not None
        else None
    )
    number = f"{customer_obj['invoice_prefix']}-{customer_obj['next_invoice_sequence']:04d}"
    return {
        "id": invoice_id,
        "object": "invoice",
        # The sandbox account's origin address (operations.tax.ORIGIN_COUNTRY).
        "account_country": "DE",
        "account_name": "LLMGen (sandbox)",
        "account_tax_ids": None,
        "amount_due": max(total, 0),
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_remaining": max(total, 0),
        "amount_shipping": 0,
        "application": None,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": True,
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "automatically_finalizes_at": None,
        "billing_reason": billing_reason,
        "collection_method": "charge_automatically",
        "created": now,
        "currency": subscription_obj["currency"] if subscription_obj else lines[0]["currency"],
        "custom_fields": None,
        "customer": customer_obj["id"],
        "customer_account": None,
        "customer_address": None,
        "customer_email": customer_obj["email"],
        "customer_name": customer_obj["name"],
        "customer_phone": None,
        "customer_shipping": None,
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "due_date": None,
        "effective_at": now,
        "ending_balance": None,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": list_object(lines, f"/v1/invoices/{invoice_id}/lines"),
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None,
        "number": number,
        "on_behalf_of": None,
        "parent": parent,
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "period_end": period_end,
        "period_start": period_start,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": customer_obj["balance"],
        "statement_descriptor": None,
        "status": "draft",
        "status_transitions": {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "subtotal": total,
        "subtotal_excluding_tax": total,
        "test_clock": None,
        "total": total,
        "total_discount_amounts": [],
        "total_excluding_tax": total,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": None,
    }
