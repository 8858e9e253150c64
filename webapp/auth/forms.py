"""Sign-up, log-in and account-recovery forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, Field, HiddenField, PasswordField
from wtforms.validators import DataRequired, Email, Length, ValidationError

from webapp.auth.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, password_problem


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

    def validate_password(self, field: Field) -> None:
        """Refuse common and breached passwords (webapp/auth/passwords.py)."""
        if field.errors:
            return  # too short or too long: that message is enough
        problem = password_problem(field.data or "", email=self.email.data)
        if problem:
            raise ValidationError(problem)


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


def _new_password_field(label: str) -> PasswordField:
    return PasswordField(
        label,
        validators=[
            DataRequired("Choose a new password."),
            Length(
                min=MIN_PASSWORD_LENGTH,
                max=MAX_PASSWORD_LENGTH,
                message=f"Use {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters.",
            ),
        ],
    )


def _email_field(label: str) -> EmailField:
    return EmailField(
        label,
        filters=[_strip],
        validators=[
            DataRequired("Enter an email address."),
            Length(max=254, message="That email address is too long."),
            Email("Enter a valid email address, like name@example.com."),
        ],
    )


class NewPasswordForm(FlaskForm):
    """A new password, held to the sign-up rules; the view sets `account_email` (a hint for
    zxcvbn: a password made of the address is easy to guess)."""

    account_email: str | None = None
    new_password = _new_password_field("New password")

    def validate_new_password(self, field: Field) -> None:
        if field.errors:
            return
        problem = password_problem(field.data or "", email=self.account_email)
        if problem:
            raise ValidationError(problem)


class ForgotPasswordForm(FlaskForm):
    email = _email_field("Email")


class ChangePasswordForm(NewPasswordForm):
    current_password = PasswordField(
        "Current password",
        validators=[
            DataRequired("Enter your current password."),
            Length(max=MAX_PASSWORD_LENGTH),
        ],
    )


class ChangeEmailForm(FlaskForm):
    new_email = _email_field("New email address")
    password = PasswordField(
        "Current password",
        validators=[
            DataRequired("Enter your current password."),
            Length(max=MAX_PASSWORD_LENGTH),
        ],
    )
