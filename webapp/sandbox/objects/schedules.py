"""Subscription schedules and their phases (SDK `_subscription_schedule.py`; Stripe's example
in fixtures3.json shows the shape, not a possible state)."""

from __future__ import annotations

from typing import Any

from webapp.sandbox.store import new_id


def schedule_phase(
    *,
    start: int,
    end: int,
    items: list[dict[str, Any]],
    currency: str,
    proration_behavior: str = "create_prorations",
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A phase; its items name their Price by id (`plan` too, as Stripe's API reference
    example shows for schedules: docs.stripe.com/api/subscription_schedules/release)."""
    return {
        "add_invoice_items": [],
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": None,
        "billing_thresholds": None,
        "collection_method": None,
        "currency": currency,
        "default_payment_method": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "end_date": end,
        "invoice_settings": None,
        "items": [
            {
                "billing_thresholds": None,
                "discounts": [],
                "metadata": dict(item.get("metadata") or {}),
                "plan": item["price"],
                "price": item["price"],
                "quantity": item["quantity"],
                "tax_rates": [],
            }
            for item in items
        ],
        "metadata": dict(metadata or {}),
        "on_behalf_of": None,
        "proration_behavior": proration_behavior,
        "start_date": start,
        "transfer_data": None,
        "trial_end": None,
    }


def subscription_schedule(
    now: int,
    *,
    customer_id: str,
    phases: list[dict[str, Any]],
    end_behavior: str,
    billing_mode: dict[str, Any],
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "id": new_id("sub_sched_"),
        "object": "subscription_schedule",
        "application": None,
        "billing_mode": billing_mode,
        "canceled_at": None,
        "completed_at": None,
        "created": now,
        "current_phase": None,
        "customer": customer_id,
        "customer_account": None,
        "default_settings": {
            "application_fee_percent": None,
            "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
            "billing_cycle_anchor": "automatic",
            "billing_thresholds": None,
            "collection_method": "charge_automatically",
            "default_payment_method": None,
            "description": None,
            "invoice_settings": {
                "account_tax_ids": None,
                "custom_fields": None,
                "days_until_due": None,
                "description": None,
                "footer": None,
                "issuer": {"type": "self"},
            },
            "on_behalf_of": None,
            "transfer_data": None,
        },
        "end_behavior": end_behavior,
        "livemode": False,
        "metadata": dict(metadata or {}),
        "phases": phases,
        "released_at": None,
        "released_subscription": None,
        "status": "not_started",
        "subscription": None,
        "test_clock": None,
        # Private: the index of the phase in effect.
        "_phase": None,
    }
