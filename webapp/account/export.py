"""Download my data: everything we hold about a member, as one JSON document.

Dates are ISO 8601 in UTC (`2026-01-15T09:30:00Z`); amounts are integers in the currency's
smallest unit (cents), beside the currency. API keys appear by name, display prefix and dates
only: their secrets are never stored, and their hashes are never shown.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from webapp.api.presenters import credit_entry, iso_z, subscription
from webapp.billing import credit_summary
from webapp.extensions import db
from webapp.models import (
    ApiKey,
    CompanyDetails,
    CreditEntry,
    Invoice,
    OutgoingMail,
    Subscription,
    User,
)
from webapp.models.base import utcnow

# Bumped when a field changes meaning or goes away; new fields may appear without a bump.
# 2: credits carry totalPurchased (was totalGranted) and entries their txn_ id and type.
EXPORT_VERSION = 2


def export_user_data(user: User) -> dict[str, Any]:
    """The member's data (see the module docstring)."""
    return {
        "version": EXPORT_VERSION,
        "exportedAt": iso_z(utcnow()),
        "profile": {
            "email": user.email,
            "createdAt": iso_z(user.created_at),
            "verified": user.email_verified_at is not None,
            "emailVerifiedAt": iso_z(user.email_verified_at),
            "role": user.role,
        },
        "subscriptions": [_subscription(row) for row in _rows(Subscription, user.id)],
        "invoices": [_invoice(row) for row in _rows(Invoice, user.id)],
        "credits": _credits(user.id),
        "apiKeys": [_api_key(row) for row in _rows(ApiKey, user.id)],
        "company": _company(db.session.get(CompanyDetails, user.id)),
        "mail": _mail(user.email),
    }


def _company(row: CompanyDetails | None) -> dict[str, Any] | None:
    """The company name, billing address and VAT number on the member's invoices."""
    if row is None:
        return None
    fields = ("name", "country", "line1", "line2", "city", "state")
    return {
        **{name: getattr(row, name) for name in fields},
        "postalCode": row.postal_code,
        "vatNumber": row.tax_id_value,
        "updatedAt": iso_z(row.updated_at),
    }


def _rows(model: Any, user_id: int) -> list[Any]:
    order = model.created if model is Invoice else model.created_at
    return list(
        db.session.scalars(select(model).where(model.user_id == user_id).order_by(order, model.id))
    )


def _subscription(row: Subscription) -> dict[str, Any]:
    return {
        "id": row.stripe_subscription_id,
        **subscription(row),
        "createdAt": iso_z(row.created_at),
        "endedAt": iso_z(row.ended_at),
    }


def _invoice(row: Invoice) -> dict[str, Any]:
    return {
        "id": row.id,
        "number": row.number,
        "subscription": row.stripe_subscription_id,
        "status": row.status,
        "createdAt": iso_z(row.created),
        "currency": row.currency,
        "totalCents": row.total,
        "amountPaidCents": row.amount_paid,
        "amountRefundedCents": row.amount_refunded,
        "amountDisputedCents": row.amount_disputed,
        "hostedInvoiceUrl": row.hosted_invoice_url,
        "invoicePdf": row.invoice_pdf,
    }


def _credits(user_id: int) -> dict[str, Any]:
    summary = credit_summary(user_id, recent=0)
    entries = db.session.scalars(
        select(CreditEntry)
        .where(CreditEntry.user_id == user_id)
        .order_by(CreditEntry.created_at, CreditEntry.id)
    )
    return {
        "balance": summary.balance,
        "totalPurchased": summary.total_purchased,
        "totalUsed": summary.total_used,
        "totalTakenBack": summary.total_taken_back,
        "entries": [credit_entry(entry) for entry in entries],
    }


def _api_key(row: ApiKey) -> dict[str, Any]:
    return {
        "id": row.public_id,
        "name": row.name,
        "description": row.description,
        "prefix": row.prefix,
        "scopes": row.scopes,
        "expiresAt": iso_z(row.expires_at),
        "createdAt": iso_z(row.created_at),
        "lastUsedAt": iso_z(row.last_used_at),
        "revokedAt": iso_z(row.revoked_at),
    }


def _mail(address: str) -> list[dict[str, Any]]:
    """The mail we sent (or are about to send) to the member's address: when, and what about."""
    rows = db.session.scalars(
        select(OutgoingMail)
        .where(OutgoingMail.to_address == address)
        .order_by(OutgoingMail.created_at, OutgoingMail.id)
    )
    return [
        {
            "subject": row.subject,
            "status": row.status,
            "createdAt": iso_z(row.created_at),
            "sentAt": iso_z(row.sent_at),
        }
        for row in rows
    ]
