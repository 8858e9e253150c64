"""Company details: the name, billing address and VAT number on a member's Stripe customer.

Stripe's customer is the source of truth (its invoices print these, and Stripe Tax taxes where
the address is); `company_details` is our copy, so the account page reads them without a call to
Stripe. The copy is written:

- when the member saves the form: Stripe first (`customers.update` for name and address; a new
  tax id is created before the old one is deleted, so a failure never leaves the customer with
  none), then our row, from what Stripe answered;
- when Stripe says the customer changed (`customer.updated`, `customer.tax_id.created`,
  `customer.tax_id.deleted`: an address or VAT number typed at Checkout, or an edit in the
  Dashboard): the customer is read afresh, so late or repeated events change nothing.

Tax never changes credits: nothing here touches subscriptions, invoices or the ledger.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from webapp.billing.base import BillingError, call_stripe, dig
from webapp.billing.checkout import ensure_customer
from webapp.billing.errors import provider_errors
from webapp.countries import COUNTRIES, EU_COUNTRIES
from webapp.extensions import db
from webapp.models import CompanyDetails, User
from webapp.models.base import utcnow
from webapp.stripe_gateway import InvalidRequest, get_gateway

# The VAT number's country prefix where it is not the ISO code (Greece writes EL).
VAT_PREFIX = {"GR": "EL"}
# Stripe's documented examples (docs.stripe.com/billing/customer/tax-ids): the number after
# the prefix, for the countries whose format is fixed; others take 2 to 13 letters or digits.
VAT_FORMATS = {
    "AT": r"U\d{8}",
    "BE": r"[01]\d{9}",
    "DE": r"\d{9}",
    "DK": r"\d{8}",
    "ES": r"[0-9A-Z]\d{7}[0-9A-Z]",
    "FR": r"[0-9A-Z]{2}\d{9}",
    "GB": r"\d{9}|\d{12}",
    "IE": r"\d{7}[A-Z]{1,2}|\d[A-Z]\d{5}[A-Z]",
    "IT": r"\d{11}",
    "NL": r"\d{9}B\d{2}",
    "PL": r"\d{10}",
    "SE": r"\d{12}",
}


class CompanyDetailsInvalid(BillingError):
    """A field of the company details form that cannot be sent to Stripe; `field` names it."""

    code = "company_details_invalid"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class CompanyInput:
    """What the member typed (stripped; empty strings are None)."""

    name: str | None
    country: str | None
    line1: str | None
    line2: str | None
    city: str | None
    postal_code: str | None
    state: str | None
    vat_number: str | None

    def address(self) -> dict[str, str] | None:
        if not self.country:
            return None
        fields = ("country", "line1", "line2", "city", "postal_code", "state")
        return {key: getattr(self, key) or "" for key in fields}


def tax_id_type(country: str) -> str | None:
    """Stripe's tax id type for a VAT number of `country`, or None where we take none."""
    if country == "GB":
        return "gb_vat"
    return "eu_vat" if country in EU_COUNTRIES else None


def normalise_vat(country: str, value: str) -> tuple[str, str]:
    """(type, value) of a VAT number for `country`: spaces and dots dropped, upper case, the
    country prefix added if missing; CompanyDetailsInvalid with words a person can act on."""
    tax_type = tax_id_type(country)
    name = COUNTRIES.get(country, country)
    if tax_type is None:
        raise CompanyDetailsInvalid(
            f"VAT numbers can be added for EU countries and the United Kingdom, not for {name}.",
            "vat_number",
        )
    prefix = VAT_PREFIX.get(country, country)
    value = re.sub(r"[\s.\-]", "", value).upper()
    if not value.startswith(prefix) and value[:2].isdigit():
        value = prefix + value
    rest = value[len(prefix) :]
    pattern = VAT_FORMATS.get(country, r"[0-9A-Z]{2,13}")
    if not value.startswith(prefix) or not re.fullmatch(pattern, rest):
        example = {"DE": "DE123456789", "FR": "FRAB123456789", "NL": "NL123456789B01"}.get(
            country, f"{prefix} followed by the number"
        )
        raise CompanyDetailsInvalid(
            f"This is not a VAT number of {name}: it should look like {example}.", "vat_number"
        )
    return tax_type, value


def check_input(data: CompanyInput) -> None:
    """Refuse what Stripe would refuse or could not tax, naming the field."""
    if data.country and data.country not in COUNTRIES:
        raise CompanyDetailsInvalid("Choose a country from the list.", "country")
    if data.country:
        for field, words in (("line1", "address"), ("city", "city"), ("postal_code", "postcode")):
            if not getattr(data, field):
                raise CompanyDetailsInvalid(f"Enter the {words}.", field)
    elif any((data.line1, data.line2, data.city, data.postal_code, data.state)):
        raise CompanyDetailsInvalid("Choose the country of this address.", "country")
    if data.vat_number and not data.country:
        raise CompanyDetailsInvalid("Choose the country of this VAT number.", "country")


def company_details(user_id: int) -> CompanyDetails | None:
    return db.session.get(CompanyDetails, user_id)


@provider_errors
def save_company_details(user: User, data: CompanyInput) -> CompanyDetails:
    """Send the details to the member's Stripe customer, then keep our copy.

    Raises CompanyDetailsInvalid (our checks, or Stripe refusing a value: its own message) or
    billing's PaymentProviderError when Stripe fails; our row is then unchanged."""
    check_input(data)
    vat = normalise_vat(data.country or "", data.vat_number) if data.vat_number else None
    customer_id = ensure_customer(user)
    gateway = get_gateway()
    current = company_details(user.id)
    old_tax_id = current.stripe_tax_id if current else None
    try:
        call_stripe(
            gateway.update_customer_details,
            customer_id,
            name=data.name,
            address=data.address(),
        )
        tax_id = old_tax_id
        same = vat is not None and current is not None and current.tax_id_value == vat[1]
        if vat and not same:
            made = call_stripe(gateway.create_tax_id, customer_id, tax_type=vat[0], value=vat[1])
            tax_id = made.id
        if old_tax_id and not same:
            call_stripe(gateway.delete_tax_id, customer_id, old_tax_id)
    except InvalidRequest as exc:
        # Stripe's own words (a tax id it refuses, an address it cannot use): shown as they are.
        field = "vat_number" if exc.param in ("value", "type") else None
        raise CompanyDetailsInvalid(f"Stripe refused this: {exc}", field) from exc
    row = _store(user.id, data, vat, tax_id)
    db.session.commit()
    return row


def _store(
    user_id: int, data: CompanyInput, vat: tuple[str, str] | None, tax_id: str | None
) -> CompanyDetails:
    row = company_details(user_id) or CompanyDetails(user_id=user_id)
    address = data.address() or {}
    row.name = data.name
    for key in ("country", "line1", "line2", "city", "postal_code", "state"):
        setattr(row, key, address.get(key) or None)
    row.tax_id_type, row.tax_id_value = vat if vat else (None, None)
    row.stripe_tax_id = tax_id if vat else None
    row.updated_at = utcnow()
    db.session.add(row)
    return row


# --- webhooks: Stripe's customer changed -------------------------------------------------------


@dataclass(frozen=True)
class CustomerDetailsFacts:
    customer_id: str
    name: str | None
    address: dict[str, Any] | None
    tax_id: tuple[str, str, str] | None  # (id, type, value) of the newest tax id


def fetch_customer_details(customer_id: str | None) -> CustomerDetailsFacts | None:
    """The customer's name, address and newest tax id, read afresh (None for a deleted one)."""
    if not customer_id:
        return None
    customer = call_stripe(get_gateway().retrieve_customer_details, customer_id)
    if getattr(customer, "deleted", False):
        return None
    address = customer.address
    tax_ids = list(dig(customer, "tax_ids", "data") or [])
    newest = max(tax_ids, key=lambda t: t.created) if tax_ids else None
    return CustomerDetailsFacts(
        customer_id,
        customer.name,
        address.to_dict() if address else None,
        (newest.id, newest.type, newest.value) if newest else None,
    )


def apply_customer_details(facts: CustomerDetailsFacts | None) -> None:
    """Keep our copy equal to the customer Stripe has (inside the event's transaction)."""
    if facts is None:
        return
    user_id = db.session.scalar(select(User.id).where(User.stripe_customer_id == facts.customer_id))
    if user_id is None:
        return
    address = facts.address or {}
    data = CompanyInput(
        name=facts.name,
        country=address.get("country") or None,
        line1=address.get("line1") or None,
        line2=address.get("line2") or None,
        city=address.get("city") or None,
        postal_code=address.get("postal_code") or None,
        state=address.get("state") or None,
        vat_number=None,
    )
    tax = facts.tax_id
    _store(user_id, data, (tax[1], tax[2]) if tax else None, tax[0] if tax else None)
