"""Forms of the API-key panel on the account page (CSRF included, as every POST)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length

MAX_KEY_NAME_LENGTH = 60


def _strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class CreateApiKeyForm(FlaskForm):
    name = StringField(
        "Key name",
        filters=[_strip],
        validators=[
            DataRequired("Name the key, e.g. after the integration that will use it."),
            Length(
                max=MAX_KEY_NAME_LENGTH, message=f"Use at most {MAX_KEY_NAME_LENGTH} characters."
            ),
        ],
    )


class RevokeApiKeyForm(FlaskForm):
    """Button-only: just the CSRF token."""
