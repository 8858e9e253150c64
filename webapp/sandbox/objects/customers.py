"""Customers, their payment methods, and the customer details Checkout collects."""

from __future__ import annotations

from typing import Any

from webapp.sandbox.objects.common import EMPTY_ADDRESS
from webapp.sandbox.store import new_id


def customer(now: int, *, email: str | None, **fields: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": new_id("cus_", 14),
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": now,
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": email,
        "invoice_prefix": new_id("", 8).upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": {},
        "name": None,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }
    obj.update({k: v for k, v in fields.items() if k in obj})
    return obj


def payment_method(now: int, *, customer_id: str, card_number: str, exp_month: int, exp_year: int):
    return {
        "id": new_id("pm_"),
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": EMPTY_ADDRESS,
            "email": None,
            "name": None,
            "phone": None,
            "tax_id": None,
        },
        "card": {
            "brand": "visa",
            "checks": {
                "address_line1_check": None,
                "address_postal_code_check": None,
                "cvc_check": "pass",
            },
            "country": "US",
            "display_brand": "visa",
            "exp_month": exp_month,
            "exp_year": exp_year,
            "fingerprint": new_id("", 16),
            "funding": "credit",
            "generated_from": None,
            "last4": card_number[-4:],
            "networks": {"available": ["visa"], "preferred": None},
            "regulated_status": "unregulated",
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        },
        "created": now,
        "customer": customer_id,
        "customer_account": None,
        "livemode": False,
        "metadata": {},
        "type": "card",
        # Private: how this test card behaves. 4000 0000 0000 0341 pays its first charge and
        # declines every later one (operations.cards.card_failure); 4000 0000 0000 0259 pays,
        # then the payment is disputed as fraudulent (docs.stripe.com/testing, "Disputes");
        # 4000 0027 6000 3184 asks for 3-D Secure on every charge (operations.cards).
        "_renewal_fails": card_number == "4000000000000341",
        "_disputes": card_number == "4000000000000259",
        "_always_authenticate": card_number == "4000002760003184",
    }


def customer_details(email: str | None) -> dict[str, Any]:
    return {
        "address": None,
        "business_name": None,
        "email": email,
        "individual_name": None,
        "name": None,
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": [],
    }
