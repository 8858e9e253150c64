"""Sign-up and log-in forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, PasswordField
from wtforms.validators import DataRequired, Email, Length

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 128


def _strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class PlanChoiceMixin:
    """The plan and cycle an anonymous visitor picked on the pricing page, carried through."""

    plan = HiddenField()
    cycle = HiddenField()


class SignupForm(PlanChoiceMixin, FlaskForm):
    email = EmailField(
        "Email",
        filters=[_strip],
        validators=[
            DataRequired("Enter your email address."),
            Length(max=254, message="That email address is too long."),
            Email("Enter a valid email address, like name@example.com."),
        ],
    )
    password = PasswordField(
        "Password",
        validators=[
            DataRequired("Choose a password."),
            Length(
                min=MIN_PASSWORD_LENGTH,
                max=MAX_PASSWORD_LENGTH,
                message=f"Use {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters.",
            ),
        ],
    )


class LoginForm(PlanChoiceMixin, FlaskForm):
    email = EmailField(
        "Email",
        filters=[_strip],
        validators=[DataRequired("Enter your email address."), Length(max=254)],
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired("Enter your password."), Length(max=MAX_PASSWORD_LENGTH)],
    )
    next = HiddenField()


class EmptyForm(FlaskForm):
    """For button-only POSTs: just the CSRF token."""
