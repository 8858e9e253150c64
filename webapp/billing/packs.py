"""Credit packs: one-time purchases of credits, with or without a subscription.

Invariants (README, "Credit packs"):

- What may be charged: the catalog's price of one pack, through a payment-mode Checkout Session
  that Stripe makes an invoice for once paid (the buyer's receipt).
- What may be granted: a paid session grants its pack's credits exactly once, under the ledger
  key `pack:<checkout session id>` (type `purchase`, described by the pack's name). The webhook
  (`checkout.session.completed`, `checkout.session.async_payment_succeeded`) and the success
  page both call `apply_pack_facts`; whichever comes first writes the entry, the rest find the
  key taken. A session that is not paid (an async payment still pending, an expired session)
  grants nothing.
- Money that goes back takes back what it bought, pro rata and rounded so that what stays is
  never more than was paid for: a refund (full or partial), an open or lost dispute, a credit
  note on the pack's invoice; a won dispute or a failed refund gives it back. These adjustments
  are entries of type `refund` keyed `pack:<session>:<n>`, each writing only the difference
  between what the ledger holds for the session and what its invoice's kept share buys, with
  the member locked, so replays add nothing.

What the session bought is read from the session's own metadata (`pack_id`, `credits`, `name`
as they were at checkout), so a later catalog change does not change a past purchase.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from math import floor
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from webapp.billing.base import (
    CatalogMismatch,
    CheckoutBusy,
    CheckoutNotFound,
    call_stripe,
    from_timestamp,
    id_of,
)
from webapp.billing.credits import add_entry
from webapp.billing.errors import provider_errors, required
from webapp.billing.invoices import kept_share, store_invoice
from webapp.billing.leases import Busy, lease
from webapp.billing.stripe_facts import InvoiceFacts, fetch_invoice_facts
from webapp.billing.subscriptions import user_for_customer
from webapp.catalog import Pack, get_catalog, get_checkout_options
from webapp.database import lock_row
from webapp.extensions import db
from webapp.models import CheckoutSession, CreditEntry, Invoice, User
from webapp.models.base import utcnow
from webapp.stripe_gateway import InvalidRequest, get_gateway, plain_metadata
from webapp.urls import public_url

log = logging.getLogger(__name__)

# A pack checkout's row in `checkout_sessions`: `plan_id` holds the pack id, `cycle` this.
PACK_CYCLE = "pack"
GRANT_PREFIX = "pack:"


@dataclass(frozen=True)
class PackCheckoutStart:
    session_id: str
    url: str
    pack: Pack


@dataclass(frozen=True)
class PackFacts:
    """A payment-mode Checkout Session as Stripe has it, and once paid its invoice."""

    session_id: str
    status: str  # "open", "complete" or "expired"
    paid: bool
    customer_id: str | None
    client_reference_id: str | None
    metadata: dict[str, str]
    invoice: InvoiceFacts | None
    terms_accepted: bool = False

    @property
    def bought(self) -> tuple[int, str] | None:
        """(credits, pack name) the session sold, from the metadata we wrote; None if it is not
        a pack session of ours."""
        credits = self.metadata.get("credits", "")
        if not self.metadata.get("pack_id") or not credits.isdigit() or int(credits) <= 0:
            return None
        return int(credits), self.metadata.get("pack_name") or self.metadata["pack_id"]


@dataclass(frozen=True)
class PackFulfilment:
    """What the success page tells the buyer."""

    status: str  # "complete", "processing", "open" or "expired"
    pack: Pack | None
    credits_granted: int


# --- starting a checkout ----------------------------------------------------------------------


@provider_errors
def start_pack_checkout(
    user: User, pack_id: object, *, success_url: str, cancel_url: str
) -> PackCheckoutStart:
    """A Checkout Session for one pack: an open one for the same pack and return URLs is reused.

    Raises UnknownPack, CatalogMismatch, CheckoutBusy or billing's PaymentProviderError. No
    subscription is needed, and one does not stand in the way.
    """
    from webapp.billing.checkout import ensure_customer

    pack = get_catalog().pack(pack_id)
    try:
        with lease(f"pack-checkout:{user.id}"):
            reusable = _reusable_session(user.id, pack.id, success_url, cancel_url)
            if reusable is not None:
                return PackCheckoutStart(reusable.stripe_session_id, reusable.url, pack)
            customer_id = ensure_customer(user)
            return _create_session(user.id, customer_id, pack, success_url, cancel_url)
    except Busy:
        raise CheckoutBusy("Another checkout for your account is starting. Try again.") from None


def _create_session(
    user_id: int, customer_id: str, pack: Pack, success_url: str, cancel_url: str
) -> PackCheckoutStart:
    gateway = get_gateway()
    price = call_stripe(gateway.price_for, pack.lookup_key)
    if price.unit_amount != pack.amount_cents or price.currency != pack.currency:
        log.error("Stripe price %s does not match the catalog; run stripe sync-catalog", pack.id)
        raise CatalogMismatch("This pack is briefly unavailable. Please try again later.")
    options = get_checkout_options()
    option_params = {}
    if options.consent_collection:
        # The terms checkbox, as on plan checkouts; the other options (promotion codes, tax)
        # are not offered on packs (README, "Credit packs").
        params = options.session_params(terms_url=public_url("legal.terms"))
        option_params = {k: params[k] for k in ("consent_collection", "custom_text") if k in params}
    session = call_stripe(
        gateway.create_pack_checkout_session,
        customer_id=customer_id,
        price_id=price.id,
        user_id=user_id,
        pack_id=pack.id,
        credits=pack.credits,
        pack_name=pack.name,
        success_url=success_url,
        cancel_url=cancel_url,
        idempotency_key=_idempotency_key(user_id, pack, success_url, cancel_url, option_params),
        option_params=option_params,
    )
    _record(user_id, pack.id, session)
    log.info("pack checkout session %s created for user %s (%s)", session.id, user_id, pack.id)
    return PackCheckoutStart(session.id, required(session.url, "a checkout URL"), pack)


def _idempotency_key(user_id: int, pack: Pack, *parts: Any) -> str:
    # A double click sends the same key (one session); after that session was recorded, the
    # next checkout counts one more and gets a new key.
    attempts = db.session.scalar(
        select(func.count()).select_from(CheckoutSession).where(CheckoutSession.user_id == user_id)
    )
    digest = hashlib.sha256(repr(parts).encode()).hexdigest()[:16]
    return f"pack-checkout-{user_id}-{attempts}-{pack.id}-{pack.amount_cents}-{digest}"


def _reusable_session(
    user_id: int, pack_id: str, success_url: str, cancel_url: str
) -> CheckoutSession | None:
    from webapp.billing.checkout import _returns_to

    rows = db.session.scalars(
        select(CheckoutSession).where(
            CheckoutSession.user_id == user_id,
            CheckoutSession.status == "open",
            CheckoutSession.cycle == PACK_CYCLE,
            CheckoutSession.plan_id == pack_id,
        )
    ).all()
    soon = utcnow() + timedelta(minutes=5)
    for row in rows:
        if (row.expires_at is None or row.expires_at > soon) and _returns_to(
            row.stripe_session_id, success_url, cancel_url
        ):
            return row
    return None


def _record(user_id: int, pack_id: str, session: Any) -> None:
    db.session.add(
        CheckoutSession(
            user_id=user_id,
            stripe_session_id=session.id,
            plan_id=pack_id,
            cycle=PACK_CYCLE,
            status="open",
            url=session.url,
            expires_at=from_timestamp(session.expires_at),
        )
    )
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # a concurrent double click recorded the same session


# --- fulfilment ---------------------------------------------------------------------------------


def is_pack_session(session: dict[str, Any]) -> bool:
    """A webhook's session payload is one of ours for a pack (its mode and metadata never
    change, so the payload may be trusted for this)."""
    metadata = session.get("metadata") or {}
    return session.get("mode") == "payment" and bool(metadata.get("pack_id"))


def fetch_pack_facts(session_id: str) -> PackFacts:
    """The session as Stripe has it now, and once paid its invoice with what went back on it."""
    session = call_stripe(get_gateway().retrieve_checkout_session, session_id)
    paid = session.payment_status == "paid"
    invoice_id = id_of(session.invoice)
    invoice = fetch_invoice_facts(invoice_id) if paid and invoice_id else None
    consent = session.consent
    return PackFacts(
        session_id=session.id,
        status=required(session.status, "a checkout session's status"),
        paid=paid,
        customer_id=id_of(session.customer),
        client_reference_id=session.client_reference_id,
        metadata=plain_metadata(session.metadata),
        invoice=invoice,
        terms_accepted=consent is not None and consent.terms_of_service == "accepted",
    )


def apply_pack_facts(facts: PackFacts) -> None:
    """Record the session's status and, once paid, settle its credits (in the caller's
    transaction, with the member locked)."""
    from webapp.billing.checkout import record_session_status

    record_session_status(facts.session_id, facts.status, facts.terms_accepted)
    bought = facts.bought
    if not (facts.status == "complete" and facts.paid) or bought is None:
        return
    if facts.customer_id is None:
        log.error("paid pack session %s has no customer; not granted", facts.session_id)
        return
    user_id = user_for_customer(facts.customer_id, facts.metadata)
    if user_id is None or str(user_id) != (facts.client_reference_id or ""):
        log.warning("pack session %s belongs to no user of ours; ignored", facts.session_id)
        return
    lock_row(User, user_id)
    invoice = store_invoice(facts.invoice, user_id) if facts.invoice else None
    credits, name = bought
    _settle(user_id, facts.session_id, credits, name, invoice)


def settle_pack_invoice(facts: InvoiceFacts, user_id: int, kind: str | None) -> None:
    """Money moved on a pack's invoice (a refund, dispute or credit note): store what Stripe
    says and settle that pack's credits. The caller holds the member's lock.

    The invoice is stored even before the pack is granted: a fulfilment that read Stripe before
    this refund and commits after it then settles against this later read (`store_invoice`
    keeps the latest), so the refund is never lost."""
    if facts.pack_id is None:
        return  # not a pack's: nothing it bought is ours to settle
    invoice = store_invoice(facts, user_id)
    entry = db.session.scalar(
        select(CreditEntry).where(
            CreditEntry.user_id == user_id,
            CreditEntry.invoice_id == facts.id,
            CreditEntry.grant_key.startswith(GRANT_PREFIX),
            CreditEntry.type == "purchase",
        )
    )
    if entry is None or entry.grant_key is None:
        return  # not granted yet: its fulfilment grants only what stayed paid
    session_id = entry.grant_key.removeprefix(GRANT_PREFIX)
    _settle(user_id, session_id, entry.amount, entry.description, invoice, kind)


def _settle(
    user_id: int,
    session_id: str,
    credits: int,
    name: str,
    invoice: Invoice | None,
    kind: str | None = None,
) -> None:
    """Grant the pack once, then make what the ledger holds for it equal to what stayed paid
    (the refund rule of plan invoices, `kept_share`, rounded down)."""
    key = f"{GRANT_PREFIX}{session_id}"
    add_entry(
        user_id=user_id,
        amount=credits,
        grant_key=key,
        description=name,
        invoice_id=invoice.id if invoice else None,
        entry_type="purchase",
    )
    if invoice is None:
        return  # no invoice (yet): nothing can have gone back on it that we could see
    held, count = db.session.execute(
        select(func.coalesce(func.sum(CreditEntry.amount), 0), func.count()).where(
            CreditEntry.user_id == user_id,
            or_(CreditEntry.grant_key == key, CreditEntry.grant_key.startswith(f"{key}:")),
        )
    ).one()
    difference = floor(credits * kept_share(invoice, invoice.total)) - int(held)
    if difference:
        add_entry(
            user_id=user_id,
            amount=difference,
            grant_key=f"{key}:{count}",
            description=_adjustment_words(name, difference, kind),
            invoice_id=invoice.id,
            entry_type="refund",
            kind="refund",
        )


def _adjustment_words(name: str, difference: int, kind: str | None) -> str:
    if difference > 0:
        return f"{name}: credits returned"
    why = {"dispute": "payment disputed", "credit_note": "credited"}.get(kind or "", "refunded")
    return f"{name}: {why}"


@provider_errors
def fulfil_pack_checkout(session_id: str, *, user_id: int) -> PackFulfilment:
    """The success page: check ownership, then fulfil exactly as the webhook does."""
    row = db.session.scalar(
        select(CheckoutSession).where(
            CheckoutSession.stripe_session_id == session_id, CheckoutSession.cycle == PACK_CYCLE
        )
    )
    if row is None or row.user_id != user_id:
        raise CheckoutNotFound("No such checkout session.")
    try:
        facts = fetch_pack_facts(session_id)
    except InvalidRequest:
        raise CheckoutNotFound("No such checkout session.") from None
    if facts.client_reference_id != str(user_id):
        raise CheckoutNotFound("No such checkout session.")
    apply_pack_facts(facts)
    db.session.commit()
    pack = get_catalog().packs.get(row.plan_id)
    if facts.status == "complete" and facts.paid:
        return PackFulfilment("complete", pack, granted_for(session_id, user_id))
    if facts.status == "complete":
        return PackFulfilment("processing", pack, 0)
    return PackFulfilment(facts.status, pack, 0)


def granted_for(session_id: str, user_id: int) -> int:
    key = f"{GRANT_PREFIX}{session_id}"
    total = db.session.scalar(
        select(func.coalesce(func.sum(CreditEntry.amount), 0)).where(
            CreditEntry.user_id == user_id,
            or_(CreditEntry.grant_key == key, CreditEntry.grant_key.startswith(f"{key}:")),
        )
    )
    return int(total or 0)
