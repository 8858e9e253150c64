"""Forms of the account area."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    PasswordField,
    SelectField,
    StringField,
)
from wtforms.validators import DataRequired, InputRequired, Length, Optional
from wtforms.widgets import HiddenInput

from webapp.auth.passwords import MAX_PASSWORD_LENGTH
from webapp.countries import country_choices


class DeleteAccountForm(FlaskForm):
    """Deleting needs the current password (a left-open session is not enough) and a tick."""

    password = PasswordField(
        "Your current password",
        validators=[
            DataRequired("Enter your password to confirm it is you."),
            Length(max=MAX_PASSWORD_LENGTH),
        ],
    )
    confirm = BooleanField(
        "I understand that deleting my account cannot be undone, and that any plan ends now, "
        "without a refund.",
        validators=[DataRequired("Tick the box to confirm you want to delete your account.")],
    )


class SwitchForm(FlaskForm):
    """Confirming a plan switch: what was asked for and the terms that were shown.

    The amount and the proration moment only let the server tell whether what it would charge
    now is what the person saw; the charge itself comes from Stripe's preview, on the server.
    """

    plan = HiddenField(validators=[DataRequired(), Length(max=40)])
    cycle = HiddenField(validators=[DataRequired(), Length(max=20)])
    amount = IntegerField(widget=HiddenInput(), validators=[InputRequired()])
    proration_date = IntegerField(widget=HiddenInput(), validators=[Optional()])


class CompanyDetailsForm(FlaskForm):
    """The company name, billing address and VAT number on the member's invoices (all
    optional; an address needs its country, street, city and postcode)."""

    name = StringField("Company name", validators=[Optional(), Length(max=200)])
    country = SelectField(
        "Country",
        choices=country_choices("—"),
        validators=[Optional()],
        # billing.company checks the code, with words a person can act on.
        validate_choice=False,
    )
    line1 = StringField("Address", validators=[Optional(), Length(max=200)])
    line2 = StringField("Address line 2", validators=[Optional(), Length(max=200)])
    city = StringField("City", validators=[Optional(), Length(max=100)])
    postal_code = StringField("Postcode", validators=[Optional(), Length(max=20)])
    state = StringField("State, county or region", validators=[Optional(), Length(max=100)])
    vat_number = StringField("VAT number", validators=[Optional(), Length(max=40)])

    def value(self, name: str) -> str | None:
        """A field's text, stripped; None when empty."""
        text = (getattr(self, name).data or "").strip()
        return text or None
