"""Our objects as the API's camelCase JSON. Names and features come from the published copy."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from webapp.api.refresh_tokens import TokenPair
from webapp.billing import CreditSummary
from webapp.billing.history import HistoryPage, history_status
from webapp.billing.usage import CreditPage, LedgerAnswer
from webapp.catalog import Catalog, Pack, Plan, Price
from webapp.models import CreditEntry, Invoice, Subscription, User
from webapp.plan_copy import PublishedCopy


def iso_z(moment: datetime | None) -> str | None:
    """`2024-01-15T00:00:00Z`: ISO 8601 in UTC, as API.md shows."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def dollars(cents: int) -> float:
    return round(cents / 100, 2)


def login_user(user: User) -> dict[str, Any]:
    """The user of `POST /auth/login`. We ask nobody for a name, so `name` is null; the id is
    a string, as in the access token's `sub`."""
    return {
        "id": str(user.id),
        "email": user.email,
        "name": None,
        "emailVerified": user.email_verified_at is not None,
        "updatedAt": iso_z(user.updated_at or user.created_at),
    }


def token_pair(pair: TokenPair) -> dict[str, Any]:
    return {
        "accessToken": pair.access.token,
        "refreshToken": pair.refresh,
        "expiresIn": pair.access.expires_in,
        "tokenType": "Bearer",
    }


def checkout_plan(plan: Plan, price: Price, copy: PublishedCopy) -> dict[str, Any]:
    return {
        "id": plan.id,
        "name": copy.plan(plan.id)["name"],
        "monthlyCredits": plan.monthly_credits,
        "priceCents": price.amount_cents,
    }


def plan_details(plan: Plan, price: Price, copy: PublishedCopy) -> dict[str, Any]:
    plan_copy = copy.plan(plan.id)
    return {
        "id": plan.id,
        "name": plan_copy["name"],
        "monthlyCredits": plan.monthly_credits,
        "price": dollars(price.amount_cents),
        "features": list(plan_copy["features"]),
    }


def subscription(row: Subscription) -> dict[str, Any]:
    ends_at = row.ends_at
    pending = row.pending_plan_id and row.pending_cycle and row.pending_change_at
    return {
        "plan": row.plan_id,
        "status": row.status,
        "billingCycle": row.cycle,
        "currentPeriodStart": iso_z(row.current_period_start),
        "currentPeriodEnd": iso_z(row.current_period_end),
        # Flexible billing mode schedules a cancellation as `cancel_at` alone: it ends all the same.
        "cancelAtPeriodEnd": ends_at is not None
        and row.current_period_end is not None
        and ends_at <= row.current_period_end,
        "cancelAt": iso_z(ends_at),
        "scheduledChange": {
            "plan": row.pending_plan_id,
            "billingCycle": row.pending_cycle,
            "effectiveAt": iso_z(row.pending_change_at),
        }
        if pending
        else None,
    }


def public_plan(plan: Plan, copy: PublishedCopy) -> dict[str, Any]:
    plan_copy = copy.plan(plan.id)
    return {
        "id": plan.id,
        "name": plan_copy["name"],
        "tagline": plan_copy["tagline"],
        "description": plan_copy["description"],
        "features": list(plan_copy["features"]),
        "badge": plan_copy["badge"],
        "highlighted": bool(plan_copy["highlighted"]),
        "monthlyCredits": plan.monthly_credits,
        "prices": {
            cycle: {"priceCents": price.amount_cents, "price": dollars(price.amount_cents)}
            for cycle, price in plan.prices.items()
        },
    }


def plans(catalog: Catalog, copy: PublishedCopy) -> dict[str, Any]:
    ordered = sorted(catalog.plans.values(), key=lambda p: copy.plan(p.id)["display_order"])
    return {"currency": catalog.currency, "plans": [public_plan(p, copy) for p in ordered]}


def pack(pack: Pack, copy: PublishedCopy) -> dict[str, Any]:
    """A credit pack as API.md's `GET /credits/packages` shows it: named by the published copy,
    as plans are."""
    return {
        "id": pack.id,
        "name": copy.pack(pack.id)["name"],
        "credits": pack.credits,
        "priceCents": pack.amount_cents,
    }


def credit_entry(entry: CreditEntry) -> dict[str, Any]:
    """One ledger entry as API.md shows it: the opaque `txn_` id, never the database id."""
    return {
        "id": entry.txn_id,
        "type": entry.type,
        "amount": entry.amount,
        "description": entry.description,
        "siteId": entry.site_id,
        "createdAt": iso_z(entry.created_at),
    }


def credits(summary: CreditSummary) -> dict[str, Any]:
    return {
        "balance": summary.balance,
        "totalPurchased": summary.total_purchased,
        "totalUsed": summary.total_used,
        "totalTakenBack": summary.total_taken_back,
        "recentTransactions": [credit_entry(entry) for entry in summary.recent],
    }


def credit_history(page: CreditPage) -> dict[str, Any]:
    return {
        "transactions": [credit_entry(entry) for entry in page.entries],
        "total": page.total,
        "hasMore": page.has_more,
    }


def ledger_answer(answer: LedgerAnswer) -> dict[str, Any]:
    return {"balance": answer.balance, "transaction": credit_entry(answer.entry)}


def invoice(row: Invoice) -> dict[str, Any]:
    return {
        "id": row.id,
        "number": row.number,
        "status": history_status(row),
        "currency": row.currency,
        # None on rows stored before we kept them, until their invoice's next event.
        "subtotalCents": row.subtotal,
        "discountCents": row.total_discount,
        "taxCents": row.total_tax,
        "totalCents": row.total,
        "amountPaidCents": row.amount_paid,
        "amountRefundedCents": row.amount_refunded,
        "createdAt": iso_z(row.created),
        "hostedInvoiceUrl": row.hosted_invoice_url,
        "invoicePdfUrl": row.invoice_pdf,
    }


def invoices(page: HistoryPage) -> dict[str, Any]:
    return {
        "invoices": [invoice(row) for row in page.invoices],
        "total": page.total,
        "hasMore": page.has_more,
    }
