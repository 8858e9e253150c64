"""Forms of the account area."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, IntegerField, PasswordField
from wtforms.validators import DataRequired, InputRequired, Length, Optional
from wtforms.widgets import HiddenInput

from webapp.auth.passwords import MAX_PASSWORD_LENGTH


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
