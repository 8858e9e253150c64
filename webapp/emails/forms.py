"""The mail-preferences form."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, RadioField
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # WTForms 3.3
from wtforms.validators import InputRequired, Optional, ValidationError

MAX_THRESHOLD = 10_000_000
UNITS = [
    SelectChoice("credits", "credits"),
    SelectChoice("percent", "% of my plan's monthly credits"),
]


class PreferencesForm(FlaskForm):
    wants_receipt_mail = BooleanField("A receipt after each payment")
    wants_credits_low_mail = BooleanField("A warning when my credits run low")
    credits_low_threshold = IntegerField(
        "Warn me when my balance falls below",
        validators=[InputRequired("Enter a whole number (0 turns the warning off).")],
    )
    # Missing (an older form, a script): credits, as the threshold always was.
    credits_low_unit = RadioField("Counted in", choices=UNITS, validators=[Optional()])

    def __init__(self, *args: Any, has_plan: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.has_plan = has_plan

    @property
    def unit(self) -> str:
        return self.credits_low_unit.data or "credits"

    def validate_credits_low_threshold(self, field: IntegerField) -> None:
        value = field.data
        if value is None:
            return  # not a whole number: IntegerField has said so
        if self.unit == "percent":
            if not 0 <= value <= 100:
                raise ValidationError("Enter a percentage from 0 to 100.")
            if value > 0 and not self.has_plan:
                raise ValidationError(
                    "A share of your plan's monthly credits needs a plan: you have none now. "
                    "Choose a number of credits instead."
                )
        elif not 0 <= value <= MAX_THRESHOLD:
            raise ValidationError(f"Enter a whole number from 0 to {MAX_THRESHOLD:,}.")
