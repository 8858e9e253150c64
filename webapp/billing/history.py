"""A member's billing history: their invoices, newest first, a page at a time.

Read from our copies of Stripe's invoices (kept current by invoice, refund and dispute events), so
showing it never calls Stripe. Drafts are left out: Stripe may still change or delete them, and
the customer has not been billed yet.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from webapp.extensions import db
from webapp.models import Invoice

PER_PAGE = 10
MAX_PER_PAGE = 100


@dataclass(frozen=True)
class HistoryPage:
    invoices: list[Invoice]
    total: int  # invoices in the whole history
    offset: int

    @property
    def has_more(self) -> bool:
        return self.offset + len(self.invoices) < self.total


def invoice_history(user_id: int, *, limit: int = PER_PAGE, offset: int = 0) -> HistoryPage:
    shown = (Invoice.user_id == user_id, Invoice.status != "draft")
    total = db.session.scalar(select(func.count()).select_from(Invoice).where(*shown)) or 0
    rows = db.session.scalars(
        select(Invoice)
        .where(*shown)
        # Newest first; the id breaks ties of the same second so pages never overlap.
        .order_by(Invoice.created.desc(), Invoice.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return HistoryPage(list(rows), total, offset)


def history_status(invoice: Invoice) -> str:
    """Stripe's status, or what became of a paid invoice's money: `refunded` when all of it went
    back, `partially_refunded` when some did."""
    refunded = invoice.amount_refunded or 0
    if invoice.status == "paid" and refunded > 0:
        return "refunded" if refunded >= invoice.amount_paid else "partially_refunded"
    return invoice.status
