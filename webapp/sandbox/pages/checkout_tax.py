"""The hosted Checkout page's billing address and tax id, when the session asks for them.

Stripe's page recomputes the tax as the buyer types; without JavaScript the sandbox asks for the
address first ("Continue"), then shows the tax and the total due above the card form.
"""

from __future__ import annotations

from typing import Any

from flask import abort, redirect, url_for
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import BooleanField, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional

from webapp.catalog import format_money
from webapp.countries import country_choices
from webapp.sandbox import operations
from webapp.sandbox.operations import tax
from webapp.sandbox.pages.blueprint import bp
from webapp.sandbox.pages.common import sandbox
from webapp.sandbox.store import Store
from webapp.sandbox.wire import StripeAPIError

FIELD_OF_PARAM = {
    "country": "country",
    "line1": "line1",
    "city": "city",
    "postal_code": "postal_code",
    "value": "tax_id",
    "type": "tax_id",
    "business_name": "business_name",
}


class BillingDetailsForm(FlaskForm):
    country = SelectField(
        "Country",
        choices=country_choices("Choose…"),
        validators=[DataRequired(message="Choose your country.")],
    )
    line1 = StringField(
        "Address", validators=[DataRequired("Enter your address."), Length(max=200)]
    )
    line2 = StringField("Address line 2", validators=[Optional(), Length(max=200)])
    city = StringField("City", validators=[DataRequired("Enter your city."), Length(max=100)])
    postal_code = StringField(
        "Postal code", validators=[DataRequired("Enter your postal code."), Length(max=20)]
    )
    state = StringField("State or region", validators=[Optional(), Length(max=100)])
    is_business = BooleanField("I'm purchasing as a business")
    business_name = StringField("Business name", validators=[Optional(), Length(max=200)])
    tax_id = StringField("VAT number", validators=[Optional(), Length(max=40)])

    def prefill(self, session: dict[str, Any], customer: dict[str, Any] | None) -> None:
        details = session.get("customer_details") or {}
        address = details.get("address") or (customer or {}).get("address") or {}
        for key in ("country", "line1", "line2", "city", "postal_code", "state"):
            getattr(self, key).data = address.get(key) or ""
        typed = (details.get("tax_ids") or [{}])[0]
        self.tax_id.data = typed.get("value") or ""
        self.business_name.data = details.get("business_name") or ""
        self.is_business.data = bool(typed)


@bp.route("/checkout/<session_id>/billing-details", methods=["POST"])
def billing_details(session_id: str) -> Response | tuple[str, int]:
    """ "Continue": keep the address (and tax id), then show the tax and the total."""
    from webapp.sandbox.pages.checkout import _page

    form = BillingDetailsForm()
    if not form.validate_on_submit():
        return _page(session_id, billing_form=form, status=400)
    address = {key: getattr(form, key).data for key in tax.ADDRESS_FIELDS}
    tax_id = None
    if form.is_business.data or (form.tax_id.data or "").strip():
        tax_id = ("eu_vat" if form.country.data != "GB" else "gb_vat", form.tax_id.data or "")
    try:
        with sandbox().store() as store:
            operations.set_billing_details(
                store,
                session_id,
                address=address,
                business_name=form.business_name.data,
                tax_id=tax_id,
            )
    except StripeAPIError as exc:
        if exc.status == 404:
            abort(404)
        field = getattr(form, FIELD_OF_PARAM.get(exc.param or "", ""), None)
        if field is None:
            return _page(session_id, billing_form=form, error=exc.message, status=400)
        field.errors = [_words(exc)]
        return _page(session_id, billing_form=form, status=400)
    return redirect(url_for("sandbox.checkout", session_id=session_id), code=303)


def _words(exc: StripeAPIError) -> str:
    if exc.code == "tax_id_invalid":
        return "This VAT number is not valid for its country (e.g. DE123456789)."
    return exc.message


def tax_summary(store: Store, session: dict[str, Any]) -> dict[str, Any] | None:
    """What the order box says of the address and the tax, when the session collects them."""
    if not tax.session_collects_address(session):
        return None
    address = tax.session_address(store, session)
    currency = session["currency"]
    summary: dict[str, Any] = {"address": address, "ready": address is not None}
    if (session.get("automatic_tax") or {}).get("enabled") and address:
        rate, reason = tax.rate_for(address["country"], tax.session_tax_ids(store, session))
        summary["tax"] = format_money(session["total_details"]["amount_tax"], currency)
        summary["rate"] = f"{rate:g}%"
        summary["reverse_charge"] = reason == "reverse_charge"
        summary["total"] = format_money(session["amount_total"], currency)
    return summary
