"""What Stripe does when money moves: paying a checkout, collecting, refunding and disputing
payments, changing or cancelling a subscription, and what the test clock sets off.

- `cards`: Stripe's test cards; attaching a card.
- `checkout`: paying and expiring Checkout Sessions; promotion codes on them.
- `discounts`: coupons, promotion codes, discounts on invoices.
- `invoicing`: invoice lines, creating and finalizing invoices.
- `payments`: PaymentIntents, Charges, InvoicePayments, refunds, disputes, voids.
- `credit_notes`: credit notes before and after payment, and voiding them.
- `changes`: price/quantity changes, prorations, payment behaviours, cancellations.
- `schedules`: subscription schedules and their phases.
- `trials`: free trials: trialing subscriptions, the reminder, the end with or without a card.
- `clock`: renewal reminders, renewals and everything else that happens as time passes.
- `hosted`: paying on the hosted invoice page; 3-D Secure challenges.
- `tax`: Stripe Tax, simplified (a rate table by country), and customers' tax ids.
"""

from webapp.sandbox.operations.cards import (
    CardError,
    attach_card,
    check_card,
    needs_authentication,
    normalise_card_number,
)
from webapp.sandbox.operations.changes import (
    Change,
    apply_change,
    cancel_now,
    portal_cancel_at_period_end,
    portal_resume,
    set_cancel_at,
    set_cancel_at_period_end,
)
from webapp.sandbox.operations.checkout import (
    TermsNotAccepted,
    apply_promotion_code,
    card_optional,
    check_terms,
    expire_checkout_session,
    expire_overdue_sessions,
    open_session,
    pay_checkout_session,
    remove_promotion_code,
    requires_terms,
    session_price,
    set_billing_details,
)
from webapp.sandbox.operations.clock import advance_clock
from webapp.sandbox.operations.discounts import RedemptionError
from webapp.sandbox.operations.payments import pay_open_invoices
from webapp.sandbox.operations.tax import update_session_totals

__all__ = [
    "CardError",
    "Change",
    "RedemptionError",
    "TermsNotAccepted",
    "advance_clock",
    "apply_change",
    "apply_promotion_code",
    "attach_card",
    "cancel_now",
    "card_optional",
    "check_card",
    "check_terms",
    "expire_checkout_session",
    "expire_overdue_sessions",
    "needs_authentication",
    "normalise_card_number",
    "open_session",
    "pay_checkout_session",
    "pay_open_invoices",
    "portal_cancel_at_period_end",
    "portal_resume",
    "remove_promotion_code",
    "requires_terms",
    "session_price",
    "set_billing_details",
    "set_cancel_at",
    "set_cancel_at_period_end",
    "update_session_totals",
]
