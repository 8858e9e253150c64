"""A member's company details: the name, billing address and VAT number their invoices carry.

Our copy of what Stripe's customer holds (`name`, `address`, its tax id), written by
`webapp.billing.company` when the member saves the form (after Stripe accepted it) and when a
`customer.updated` / `customer.tax_id.*` webhook says Stripe's changed (an address typed at
Checkout), so the account page never calls Stripe to show them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from webapp.extensions import Model
from webapp.models.base import UTCDateTime, utcnow


class CompanyDetails(Model):
    __tablename__ = "company_details"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    country: Mapped[str | None] = mapped_column(String(2))  # ISO 3166-1 alpha-2
    line1: Mapped[str | None] = mapped_column(String(200))
    line2: Mapped[str | None] = mapped_column(String(200))
    city: Mapped[str | None] = mapped_column(String(100))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    state: Mapped[str | None] = mapped_column(String(100))
    tax_id_type: Mapped[str | None] = mapped_column(String(20))  # Stripe's type: eu_vat, gb_vat
    tax_id_value: Mapped[str | None] = mapped_column(String(40))
    stripe_tax_id: Mapped[str | None] = mapped_column(String(255))  # txi_…
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    @property
    def has_address(self) -> bool:
        return bool(self.country and self.line1)
