"""The checkout form: a plan and a cycle, chosen on the pricing page."""

from flask_wtf import FlaskForm
from wtforms import HiddenField


class CheckoutForm(FlaskForm):
    plan = HiddenField()
    cycle = HiddenField()


class PackCheckoutForm(FlaskForm):
    """ "Buy" on a credit pack (pricing and account pages): the pack's id."""

    pack = HiddenField()
