"""The mail-preferences form."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField
from wtforms.validators import InputRequired, NumberRange

MAX_THRESHOLD = 10_000_000


class PreferencesForm(FlaskForm):
    wants_receipt_mail = BooleanField("A receipt after each payment")
    wants_credits_low_mail = BooleanField("A warning when my credits run low")
    credits_low_threshold = IntegerField(
        "Warn me when my balance falls below",
        validators=[
            InputRequired("Enter a number of credits (0 turns the warning off)."),
            NumberRange(0, MAX_THRESHOLD, f"Enter a whole number from 0 to {MAX_THRESHOLD:,}."),
        ],
    )
