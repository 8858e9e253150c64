"""Forms of the account area."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField
from wtforms.validators import DataRequired, Length

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
