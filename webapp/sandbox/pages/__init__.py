"""The pages a browser visits instead of Stripe's: hosted Checkout and the customer portal, plus
JSON control endpoints for the test clock and fault switches. Registered only in sandbox mode."""

from webapp.sandbox.pages import checkout, control, portal  # noqa: F401  (their routes)
from webapp.sandbox.pages.blueprint import bp

__all__ = ["bp"]
