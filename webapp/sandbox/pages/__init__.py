"""The pages a browser visits instead of Stripe's: hosted Checkout, the customer portal, the
hosted invoice page and the 3-D Secure test page, plus JSON control endpoints for the test clock
and fault switches. Registered only in sandbox mode."""

from webapp.sandbox.pages import (  # noqa: F401  (their routes)
    authentication,
    checkout,
    checkout_tax,
    control,
    invoice,
    portal,
)
from webapp.sandbox.pages.blueprint import bp

__all__ = ["bp"]
