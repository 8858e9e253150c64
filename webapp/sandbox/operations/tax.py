"""Stripe Tax, simplified: a rate table by country, tax on top of the price, tax ids.

What Stripe documents and the sandbox follows:

- With `automatic_tax[enabled]`, tax comes from the customer's location (its billing address)
  and is added on top of a price whose `tax_behavior` is `exclusive` — "it adds tax onto the
  subtotal amount you specify on your price" (docs.stripe.com/tax/checkout, "Update your
  products and prices"). Our prices say no `tax_behavior`; the sandbox treats them as
  exclusive, as an account whose Tax settings' default behaviour is `exclusive` does.
- Tax is charged on what is left of a line after its discounts; the invoice shows it in
  `total_taxes` and each line in `taxes` (`amount`, `tax_behavior`, `tax_rate_details`,
  `taxability_reason`, `taxable_amount`, `type`: SDK `_invoice.py` TotalTax,
  `_invoice_line_item.py` Tax), and `total` = `subtotal` - discounts + tax, while
  `total_excluding_tax` = `subtotal` - discounts.
- A zero result still shows its reason: `not_collecting` where the account is not registered,
  `reverse_charge` for a business buyer liable for the VAT itself (docs.stripe.com/tax/zero-tax).
- The invoice records the customer's address and tax ids as they were when it was made
  (`customer_address`, `customer_tax_ids`), so a renewal is taxed where the customer is then.

Sandbox simplifications (Stripe publishes no table; its rates come from its own tax engine):

- RATES: a short table of standard VAT rates; any other country, and every US state, is 0%
  with `not_collecting` (as if the account had no registration there). Every product is taxed
  at the standard rate (no product tax codes).
- The account's origin address is in ORIGIN_COUNTRY (Germany). Reverse charge: a buyer in
  another country of the EU (or in GB) whose customer has a tax id of that country's type
  (`eu_vat` / `gb_vat`) pays 0% with `reverse_charge`; a German buyer with a VAT id pays German
  VAT, as domestic B2B sales do. Tax ids are checked for their format only, never verified.
- Each line's tax is rounded half away from zero to the cent; proration credits get negative
  tax the same way. A customer with no address is taxed 0 and the invoice's
  `automatic_tax.status` says `requires_location_inputs` (Stripe would refuse to finalize it).
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from webapp.countries import EU_COUNTRIES
from webapp.sandbox.store import Store, new_id
from webapp.sandbox.wire import StripeAPIError

ORIGIN_COUNTRY = "DE"

# Standard VAT rates, percent (sandbox table; see the module docstring).
RATES: dict[str, Decimal] = {
    "AT": Decimal(20),
    "BE": Decimal(21),
    "DE": Decimal(19),
    "ES": Decimal(21),
    "FR": Decimal(20),
    "GB": Decimal(20),
    "IE": Decimal(23),
    "IT": Decimal(22),
    "NL": Decimal(21),
}


# The tax id types the sandbox accepts, with the format of their values (Stripe's examples:
# docs.stripe.com/billing/customer/tax-ids, "Supported tax ID types": DE123456789,
# FRAB123456789, NL123456789B12, ATU12345678, GB123456789).
EU_VAT_FORMATS = {
    "AT": r"ATU\d{8}",
    "BE": r"BE[01]\d{9}",
    "DE": r"DE\d{9}",
    "ES": r"ES[0-9A-Z]\d{7}[0-9A-Z]",
    "FR": r"FR[0-9A-Z]{2}\d{9}",
    "IE": r"IE\d{7}[A-Z]{1,2}|IE\d[A-Z]\d{5}[A-Z]",
    "IT": r"IT\d{11}",
    "NL": r"NL\d{9}B\d{2}",
}
TAX_ID_TYPES = ("eu_vat", "gb_vat")


def tax_id_country(tax_type: str, value: str) -> str | None:
    """The country a tax id belongs to, or None if the value is not of the type's format."""
    if tax_type == "gb_vat":
        return "GB" if re.fullmatch(r"GB(\d{9}|\d{12})", value) else None
    if tax_type != "eu_vat" or not re.fullmatch(r"[A-Z]{2}[0-9A-Z]{2,13}", value):
        return None
    prefix = value[:2]
    country = "GR" if prefix == "EL" else prefix
    if country not in EU_COUNTRIES:
        return None
    pattern = EU_VAT_FORMATS.get(country)
    if pattern and not re.fullmatch(pattern, value):
        return None
    return country


def check_tax_id(tax_type: str, value: str) -> tuple[str, str]:
    """The tax id, normalised (upper case, no spaces or dots), and its country; Stripe's
    `tax_id_invalid` error if its value does not fit the type."""
    if tax_type not in TAX_ID_TYPES:
        raise StripeAPIError(
            400,
            "Invalid value for type: the sandbox knows the tax id types "
            f"{', '.join(TAX_ID_TYPES)}.",
            param="type",
            code="parameter_invalid",
        )
    normal = re.sub(r"[\s.\-]", "", value or "").upper()
    country = tax_id_country(tax_type, normal)
    if country is None:
        raise StripeAPIError(
            400, f"Invalid value for {tax_type}.", param="value", code="tax_id_invalid"
        )
    return normal, country


def tax_id_object(now: int, *, customer_id: str, tax_type: str, value: str) -> dict[str, Any]:
    """A tax id as Stripe returns it (fixtures3.json `tax_id`)."""
    normal, country = check_tax_id(tax_type, value)
    return {
        "id": new_id("txi_"),
        "object": "tax_id",
        "country": country,
        "created": now,
        "customer": customer_id,
        "customer_account": None,
        "livemode": False,
        "owner": {"customer": customer_id, "customer_account": None, "type": "customer"},
        "type": tax_type,
        "value": normal,
        "verification": {"status": "pending", "verified_address": None, "verified_name": None},
    }


def customer_tax_ids(store: Store, customer_id: str) -> list[dict[str, Any]]:
    return store.query("tax_id", customer=customer_id)


# --- the calculation --------------------------------------------------------------------------


def tax_amount(rate: Decimal, taxable: int) -> int:
    """`rate` percent of `taxable` cents, rounded half away from zero to the cent."""
    return int((Decimal(taxable) * rate / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def rate_for(country: str | None, tax_ids: list[dict[str, Any]]) -> tuple[Decimal, str]:
    """The rate and `taxability_reason` for a buyer in `country` with these tax ids."""
    if country is None or country not in RATES:
        return Decimal(0), "not_collecting"
    own_type = "gb_vat" if country == "GB" else "eu_vat"
    is_business = any(t["type"] == own_type and t["country"] == country for t in tax_ids)
    if country != ORIGIN_COUNTRY and is_business:
        return Decimal(0), "reverse_charge"
    return RATES[country], "standard_rated"


def tax_rate_object(store: Store, country: str, rate: Decimal, reason: str) -> dict[str, Any]:
    """The Tax Rate Stripe Tax reports the tax under (one per country, rate and reason,
    reused; fixtures3.json `tax_rate`)."""
    key = f"{country}:{rate}:{reason}"
    for existing in store.query("tax_rate"):
        if existing.get("_key") == key:
            return existing
    obj = {
        "id": new_id("txr_"),
        "object": "tax_rate",
        "active": False,  # made by Stripe Tax, not selectable for manual use
        "country": country,
        "created": store.now(),
        "description": f"VAT {country}",
        "display_name": "VAT",
        "effective_percentage": float(rate),
        "flat_amount": None,
        "inclusive": False,
        "jurisdiction": country,
        "jurisdiction_level": "country",
        "livemode": False,
        "metadata": {},
        "percentage": float(rate),
        "rate_type": "percentage",
        "state": None,
        "tax_type": "vat",
        "_key": key,
    }
    store.save(obj)
    return obj


def record_customer(store: Store, invoice: dict[str, Any], customer: dict[str, Any]) -> None:
    """The customer's details as the invoice keeps them (Stripe copies them at finalization)."""
    address = customer.get("address") or None
    invoice["customer_address"] = dict(address) if address else None
    invoice["customer_name"] = customer.get("name")
    invoice["customer_tax_ids"] = [
        {"type": t["type"], "value": t["value"]} for t in customer_tax_ids(store, customer["id"])
    ]


def apply_tax(store: Store, invoice: dict[str, Any], customer: dict[str, Any]) -> None:
    """Add tax to an invoice whose subscription has automatic tax on (saved nowhere: previews
    too). Call after the discounts, before the customer's balance is applied."""
    tax_ids = customer_tax_ids(store, customer["id"])
    country = ((customer.get("address") or {}).get("country")) or None
    invoice["automatic_tax"] = {
        "disabled_reason": None,
        "enabled": True,
        "liability": {"type": "self"},
        "provider": "stripe",
        "status": "complete" if country else "requires_location_inputs",
    }
    if not country:
        return
    rate, reason = rate_for(country, tax_ids)
    tax_rate = tax_rate_object(store, country, rate, reason)
    total_tax = total_taxable = 0
    for line in invoice["lines"]["data"]:
        taxable = line["amount"] - sum(d["amount"] for d in line["discount_amounts"])
        amount = tax_amount(rate, taxable)
        line["taxes"] = [_tax_entry(amount, taxable, tax_rate["id"], reason)]
        total_tax += amount
        total_taxable += taxable
    invoice["total_taxes"] = [_tax_entry(total_tax, total_taxable, tax_rate["id"], reason)]
    invoice["total"] += total_tax
    invoice["amount_due"] = invoice["amount_remaining"] = max(invoice["total"], 0)


def _tax_entry(amount: int, taxable: int, tax_rate_id: str, reason: str) -> dict[str, Any]:
    return {
        "amount": amount,
        "tax_behavior": "exclusive",
        "tax_rate_details": {"tax_rate": tax_rate_id},
        "taxability_reason": reason,
        "taxable_amount": taxable,
        "type": "tax_rate_details",
    }


def preview_tax(
    amount: int, address: dict[str, Any] | None, tax_ids: list[dict[str, Any]]
) -> tuple[int, Decimal, str]:
    """What Checkout shows before paying: the tax on `amount` for this address and tax ids."""
    rate, reason = rate_for((address or {}).get("country"), tax_ids)
    return tax_amount(rate, amount), rate, reason


# --- Checkout: the billing address and tax id the buyer types -------------------------------


def session_collects_address(session: dict[str, Any]) -> bool:
    """Checkout asks for a billing address when told to, and whenever it must tax."""
    return session.get("billing_address_collection") == "required" or bool(
        (session.get("automatic_tax") or {}).get("enabled")
    )


def session_address(store: Store, session: dict[str, Any]) -> dict[str, Any] | None:
    """The address Checkout taxes: the one typed on the page, else the customer's own."""
    typed = (session.get("customer_details") or {}).get("address")
    if typed and typed.get("country"):
        return typed
    customer = store.find(session["customer"]) if session.get("customer") else None
    address = (customer or {}).get("address")
    return address if address and address.get("country") else None


def session_tax_ids(store: Store, session: dict[str, Any]) -> list[dict[str, Any]]:
    """The tax ids the session's tax depends on: the one typed, else the customer's."""
    typed = (session.get("customer_details") or {}).get("tax_ids") or []
    if typed:
        return [{**t, "country": tax_id_country(t["type"], t["value"])} for t in typed]
    return customer_tax_ids(store, session["customer"]) if session.get("customer") else []


def update_session_totals(store: Store, session: dict[str, Any], subtotal: int) -> None:
    """`amount_total`, `total_details.amount_tax` and `automatic_tax.status` from the subtotal,
    the discount already in `total_details` and the address known now. During a free trial
    nothing is due today: no tax either (the trial's invoices are taxed when they come)."""
    trial = bool(session.get("_trial_period_days"))
    discount = 0 if trial else session["total_details"].get("amount_discount") or 0
    subtotal = 0 if trial else subtotal
    tax = 0
    automatic = session.get("automatic_tax") or {}
    if automatic.get("enabled"):
        address = session_address(store, session)
        if address:
            tax, _rate, _reason = preview_tax(
                subtotal - discount, address, session_tax_ids(store, session)
            )
        automatic["status"] = "complete" if address else "requires_location_inputs"
    session["total_details"] = {**session["total_details"], "amount_tax": tax}
    session["amount_total"] = subtotal - discount + tax


def check_address(address: dict[str, Any]) -> dict[str, Any]:
    """The address typed on the page, each field stripped; refuses what cannot be taxed."""
    clean = {key: (str(address.get(key) or "").strip() or None) for key in ADDRESS_FIELDS}
    if not clean["country"] or not re.fullmatch(r"[A-Z]{2}", clean["country"]):
        raise StripeAPIError(400, "Choose your country.", param="country")
    for key, words in (("line1", "address"), ("city", "city"), ("postal_code", "postal code")):
        if not clean[key]:
            raise StripeAPIError(400, f"Enter your {words}.", param=key)
    return clean


ADDRESS_FIELDS = ("city", "country", "line1", "line2", "postal_code", "state")


def save_on_customer(
    store: Store, session: dict[str, Any], customer: dict[str, Any], *, new: bool
) -> None:
    """What `customer_update` lets Checkout save once the session is paid: the address and
    (the business) name typed (docs.stripe.com/api/checkout/sessions/create, customer_update),
    and the tax id typed, as a tax id of the customer (docs.stripe.com/tax/checkout/tax-ids).
    A customer Checkout created itself gets them all."""
    details = session.get("customer_details") or {}
    update = session.get("_customer_update") or {}
    before = {key: customer.get(key) for key in ("address", "name")}
    if details.get("address") and (new or update.get("address") == "auto"):
        customer["address"] = dict(details["address"])
    if details.get("business_name") and (new or update.get("name") == "auto"):
        customer["name"] = details["business_name"]
    changed = {key: value for key, value in before.items() if customer.get(key) != value}
    if changed:
        store.save(customer)
        store.emit("customer.updated", customer, changed)
    existing = {(t["type"], t["value"]) for t in customer_tax_ids(store, customer["id"])}
    for typed in details.get("tax_ids") or []:
        if (typed["type"], typed["value"]) in existing:
            continue
        tax_id = tax_id_object(
            store.now(), customer_id=customer["id"], tax_type=typed["type"], value=typed["value"]
        )
        store.save(tax_id)
        store.emit("customer.tax_id.created", tax_id)
