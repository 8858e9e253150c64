"""Forms of the API-key panel on the account page (CSRF included, as every POST)."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask_wtf import FlaskForm
from wtforms import RadioField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # WTForms 3.3
from wtforms.validators import DataRequired, Length, Optional

from webapp.api.keys import MAX_DESCRIPTION_LENGTH, MAX_KEY_LIFETIME, MAX_NAME_LENGTH
from webapp.models.api_key import SCOPE_FULL, SCOPE_READ

SCOPE_CHOICES = [
    SelectChoice(SCOPE_FULL, "Full: read, start checkouts and open the billing portal"),
    SelectChoice(SCOPE_READ, "Read-only: plan, credits and invoices, nothing else"),
]
# The page offers whole periods (the API takes any moment up to MAX_KEY_LIFETIME ahead).
EXPIRY_CHOICES = [
    SelectChoice("never", "Never"),
    SelectChoice("7", "In 7 days"),
    SelectChoice("30", "In 30 days"),
    SelectChoice("90", "In 90 days"),
    SelectChoice(str(MAX_KEY_LIFETIME.days), "In 1 year"),
]


def _strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


def _name_field() -> StringField:
    return StringField(
        "Key name",
        filters=[_strip],
        validators=[
            DataRequired("Name the key, e.g. after the integration that will use it."),
            Length(max=MAX_NAME_LENGTH, message=f"Use at most {MAX_NAME_LENGTH} characters."),
        ],
    )


def _description_field() -> TextAreaField:
    return TextAreaField(
        "Description (optional)",
        filters=[_strip],
        validators=[
            Optional(),
            Length(
                max=MAX_DESCRIPTION_LENGTH,
                message=f"Use at most {MAX_DESCRIPTION_LENGTH} characters for the description.",
            ),
        ],
    )


def _scope_field() -> RadioField:
    return RadioField("Access", choices=SCOPE_CHOICES, default=SCOPE_FULL)


class CreateApiKeyForm(FlaskForm):
    name = _name_field()
    description = _description_field()
    scope = _scope_field()
    expires = SelectField("Expires", choices=EXPIRY_CHOICES, default="never")

    def expires_at(self, now: datetime) -> datetime | None:
        """The chosen expiry as a moment, or None for a key that does not expire."""
        if self.expires.data == "never":
            return None
        return now + timedelta(days=int(self.expires.data))


class EditApiKeyForm(FlaskForm):
    """Name, description and scope of one key; prefixed per key, so ids on the page are unique.

    Its CSRF token is a KeyActionForm's, checked by the view: cached pages get each visitor's
    token stamped into fields named exactly `csrf_token` (webapp/page_cache.py), which a
    prefixed form's own token field is not.
    """

    class Meta:
        csrf = False

    name = _name_field()
    description = _description_field()
    scope = _scope_field()


class KeyActionForm(FlaskForm):
    """Just the CSRF token: the revoke button's form, and the token of each edit form."""
