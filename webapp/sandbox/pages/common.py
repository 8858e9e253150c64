"""What the sandbox's pages share: the card form, price descriptions, dates."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, Regexp

from webapp.catalog import format_money
from webapp.sandbox import operations
from webapp.sandbox.store import Store

EXPIRY_RE = re.compile(r"^\s*(\d{1,2})\s*/?\s*(\d{2}|\d{4})\s*$")
CYCLE_NAMES = {"month": "monthly", "year": "yearly"}


class EmptyForm(FlaskForm):
    """A button-only POST (cancel, resume, keep plan, authenticate): CSRF and nothing else."""


class CardForm(FlaskForm):
    card_number = StringField(
        "Card number",
        validators=[
            DataRequired(),
            Regexp(r"^[\d ]{12,23}$", message="Enter the 16 digits on the card."),
        ],
    )
    expiry = StringField(
        "Expiry",
        validators=[DataRequired(), Regexp(EXPIRY_RE.pattern, message="Use MM / YY.")],
    )
    cvc = StringField(
        "CVC", validators=[DataRequired(), Regexp(r"^\d{3,4}$", message="3 or 4 digits.")]
    )
    # Shown only when the session requires consent to the terms (its label is the session's).
    accept_terms = BooleanField("I agree to the Terms of Service")
    submit = SubmitField("Pay")

    def card(self) -> tuple[str, int, int]:
        match = EXPIRY_RE.match(self.expiry.data or "")
        assert match
        month, year = int(match.group(1)), int(match.group(2))
        return (
            operations.normalise_card_number(self.card_number.data or ""),
            month,
            (year + 2000 if year < 100 else year),
        )


class TrialForm(FlaskForm):
    """ "Start trial" without a card; the terms box shows only when the session asks for it.
    Prefixed, so its checkbox's id differs from the card form's on the same page."""

    accept_terms = BooleanField("I agree to the Terms of Service")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, prefix="trial", **kwargs)


class PromotionCodeForm(FlaskForm):
    code = StringField(
        "Promotion code",
        validators=[
            DataRequired(message="Enter a promotion code."),
            Length(max=500, message="This code is invalid."),
        ],
    )
    submit = SubmitField("Apply")


def cycle(price: dict[str, Any]) -> str:
    if price["recurring"] is None:
        return "one-time"  # a one-time price: a payment-mode session's
    return CYCLE_NAMES.get(price["recurring"]["interval"], price["recurring"]["interval"])


def describe_price(store: Store, price: dict[str, Any]) -> dict[str, Any]:
    product = store.find(price["product"]) or {}
    return {
        "id": price["id"],
        "name": product.get("name") or price["product"],
        "cycle": cycle(price),
        "amount": format_money(price["unit_amount"], price["currency"]),
        "label": f"{product.get('name') or price['product']} — "
        f"{format_money(price['unit_amount'], price['currency'])} {cycle(price)}",
    }


def date(timestamp: int | None) -> str:
    if not timestamp:
        return ""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%-d %b %Y")


def sandbox():
    return current_app.extensions["stripe_sandbox"]
