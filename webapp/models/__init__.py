"""The app's SQLAlchemy 2.x typed models. Importing this package registers every table."""

from webapp.models.api_key import ApiKey
from webapp.models.billing import (
    CheckoutSession,
    CreditEntry,
    Invoice,
    InvoiceLine,
    Lease,
    Subscription,
    WebhookEvent,
)
from webapp.models.company import CompanyDetails
from webapp.models.copy import CopyDraft, CopyRevision
from webapp.models.jobs import JobRun
from webapp.models.mail import MailStatus, OutgoingMail
from webapp.models.refresh_token import RefreshToken, RefreshTokenFamily
from webapp.models.user import Role, User

__all__ = [
    "ApiKey",
    "CheckoutSession",
    "CompanyDetails",
    "CopyDraft",
    "CopyRevision",
    "CreditEntry",
    "Invoice",
    "InvoiceLine",
    "JobRun",
    "Lease",
    "MailStatus",
    "OutgoingMail",
    "RefreshToken",
    "RefreshTokenFamily",
    "Role",
    "Subscription",
    "User",
    "WebhookEvent",
]

import webapp.sandbox.models  # noqa: F401  (the sandbox's tables, for Alembic and tests)
