"""Billing emails: what a Stripe event means for the member, told once (README "Billing emails").

Every message is queued in the transaction that applies its event (`process_event`), after the
event's effects, and is decided from what we now hold of Stripe's state (each handler re-read
it; our rows keep the newest read), never from the event's payload alone: a late
`invoice.payment_failed` about an invoice that is paid by now sends nothing. Each message has a
dedupe key naming the cause it reports, so a redelivered or replayed event, or a second event
about the same state, queues nothing new:

- payment failed / needs action: the event (one message per failed attempt);
- renewal reminder: the subscription and the period that ends (`invoice.upcoming` has no id);
- cancellation: the subscription and when it ends (many `subscription.updated` events say so);
- scheduled downgrade: the subscription, the plan and cycle it switches to, and when;
- refund: the invoice and the total refunded on it, which every new refund (or credit note)
  raises; sent by whatever first stores the higher total (any of its events, `charge.refunded`,
  `refund.*`, `credit_note.*`, `invoice.*`, or a checkout's fulfilment), before it commits;
- receipt: the invoice; credits low: the member and the ledger entry that crossed the line
  (once per downward crossing of the balance, webapp/billing/low_balance.py).

Essential messages are always sent; receipts and "credits low" are not essential: each carries a
one-click unsubscribe (RFC 8058) that also cancels that kind's pending messages. Nothing is sent
to a deleted or deactivated account.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, cast

from flask import current_app, has_app_context
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import CursorResult, func, select, update
from sqlalchemy import event as orm_event
from sqlalchemy.orm import Session

from webapp.billing.base import LIVE_STATUSES, dig, from_timestamp
from webapp.billing.credits import LEDGER_WRITES, LedgerWrite
from webapp.billing.invoices import REFUNDS_SEEN, RefundSeen
from webapp.billing.stripe_facts import SubscriptionFacts
from webapp.billing.sync import InvoiceState
from webapp.catalog import format_money
from webapp.extensions import db
from webapp.mail import MailMeta, queue_mail
from webapp.mail.outbox import url_context
from webapp.models import CreditEntry, Invoice, MailStatus, OutgoingMail, Subscription, User
from webapp.urls import public_url

log = logging.getLogger(__name__)

# The kinds a member may unsubscribe from, and the column that says whether they want it.
OPTIONAL_KINDS = {"receipt": "wants_receipt_mail", "credits_low": "wants_credits_low_mail"}
UNSUBSCRIBE_SALT = "billing-mail-unsubscribe"
# How far apart an upcoming invoice's renewal and our re-read period end may be and still be
# the same renewal (Stripe attempts payment about an hour after the period ends).
SAME_RENEWAL = timedelta(days=2)


# --- the event's hook ------------------------------------------------------------------------


def after_apply(event: dict[str, Any], facts: Any) -> None:
    """Queue the mails the event's (re-read, now stored) state calls for."""
    if facts is None:
        return
    with url_context():
        _after_apply(event, facts)


def _after_apply(event: dict[str, Any], facts: Any) -> None:
    kind = event["type"]
    if isinstance(facts, InvoiceState):
        invoice = db.session.get(Invoice, facts.invoice.id)
        if invoice is None:
            return  # not a subscription invoice of one of our members
        due = facts.invoice.amount_due
        if kind == "invoice.payment_failed" and not facts.invoice.awaiting_authentication:
            # A payment waiting for 3-D Secure gets the "confirm your payment" mail of its
            # invoice.payment_action_required (Stripe sends both), not "update your card".
            _payment_failed(event["id"], invoice, due)
        elif kind == "invoice.payment_action_required":
            _payment_action_required(event["id"], invoice, due)
        elif kind == "invoice.paid":
            _receipt(invoice)
        if facts.subscription is not None:
            _subscription_state(facts.subscription.id)
    elif isinstance(facts, SubscriptionFacts):
        if kind == "invoice.upcoming":
            _renewal_reminder(event, facts.id)
        _subscription_state(facts.id)


# --- essential mails ---------------------------------------------------------------------------


def _payment_failed(event_id: str, invoice: Invoice, amount_due: int) -> None:
    subscription = _live_subscription_of(invoice)
    if invoice.status != "open" or subscription is None:
        return  # paid, voided or written off since; or the plan is over: nothing to fix
    grace_ends = None
    if subscription.status == "past_due":
        since = subscription.past_due_since or subscription.updated_at
        grace_ends = since + timedelta(days=current_app.config["PAST_DUE_GRACE_DAYS"])
    _send(
        invoice.user_id,
        "payment_failed",
        "Your payment failed: please update your card",
        f"payment_failed:{event_id}",
        amount=_money(amount_due, invoice.currency),
        plan=_plan_name(subscription.plan_id),
        action_url=invoice.hosted_invoice_url or public_url("emails.update_card"),
        hosted=bool(invoice.hosted_invoice_url),
        grace_ends=grace_ends,
    )


def _payment_action_required(event_id: str, invoice: Invoice, amount_due: int) -> None:
    subscription = _live_subscription_of(invoice)
    if invoice.status != "open" or subscription is None:
        return
    _send(
        invoice.user_id,
        "payment_action_required",
        "Confirm your payment",
        f"payment_action_required:{event_id}",
        amount=_money(amount_due, invoice.currency),
        plan=_plan_name(subscription.plan_id),
        action_url=invoice.hosted_invoice_url or public_url("emails.update_card"),
        hosted=bool(invoice.hosted_invoice_url),
    )


def _renewal_reminder(event: dict[str, Any], subscription_id: str) -> None:
    """`invoice.upcoming` for a yearly plan that will renew: how much, and when.

    The payload (an invoice preview, with no id) says which renewal it is about; it is believed
    only when our re-read subscription renews then too, and is still set to renew.
    """
    row = _subscription(subscription_id)
    if row is None or row.status not in ("active", "trialing") or row.cycle != "yearly":
        return
    if row.ends_at is not None or row.current_period_end is None:
        return  # set to end: there is no renewal to remind of
    upcoming = event["data"]["object"]
    renews_at = _renewal_moment(upcoming)
    if renews_at is None or abs(renews_at - row.current_period_end) > SAME_RENEWAL:
        return  # a preview of another period (a late event): not this renewal
    amount = upcoming.get("amount_due")
    _send(
        row.user_id,
        "renewal_reminder",
        "Your yearly plan renews soon",
        f"renewal_reminder:{row.stripe_subscription_id}:{row.current_period_end.isoformat()}",
        plan=_plan_name(row.plan_id),
        renews_on=row.current_period_end,
        amount=_money(amount, upcoming.get("currency") or "usd") if amount is not None else None,
        pending_plan=_plan_name(row.pending_plan_id) if row.pending_plan_id else None,
        pending_cycle=row.pending_cycle,
        action_url=public_url("account.index"),
    )


def _renewal_moment(upcoming: dict[str, Any]) -> datetime | None:
    """When the previewed invoice's new period starts (its plan line), else its payment date."""
    starts = [
        dig(line, "period", "start")
        for line in dig(upcoming, "lines", "data") or []
        if not dig(line, "parent", "subscription_item_details", "proration")
    ]
    starts = [start for start in starts if isinstance(start, int)]
    moment = min(starts) if starts else upcoming.get("next_payment_attempt")
    return from_timestamp(moment) if isinstance(moment, int) else None


def _subscription_state(subscription_id: str) -> None:
    """Cancellation set or done, or a downgrade scheduled: once per state, from our newest read."""
    row = _subscription(subscription_id)
    if row is None or row.duplicate_of is not None:
        return  # a duplicate we cancelled and refunded has its own notice on the account page
    sub_id = row.stripe_subscription_id
    if row.status == "canceled":
        _send(
            row.user_id,
            "subscription_ended",
            "Your plan has ended",
            f"subscription_ended:{sub_id}",
            plan=_plan_name(row.plan_id),
            ended_on=row.ended_at,
            action_url=public_url("pricing.index"),
        )
    elif row.status in LIVE_STATUSES and row.ends_at is not None:
        _send(
            row.user_id,
            "cancellation_scheduled",
            "Your plan is cancelled",
            f"cancellation_scheduled:{sub_id}:{row.ends_at.isoformat()}",
            plan=_plan_name(row.plan_id),
            ends_on=row.ends_at,
            action_url=public_url("account.index"),
        )
    elif row.status in LIVE_STATUSES and row.pending_plan_id and row.pending_change_at:
        _send(
            row.user_id,
            "downgrade_scheduled",
            f"Your switch to {_plan_name(row.pending_plan_id)} is scheduled",
            f"downgrade_scheduled:{sub_id}:{row.pending_plan_id}:{row.pending_cycle}:"
            f"{row.pending_change_at.isoformat()}",
            plan=_plan_name(row.plan_id),
            new_plan=_plan_name(row.pending_plan_id),
            new_cycle=row.pending_cycle,
            switch_on=row.pending_change_at,
            action_url=public_url("account.index"),
        )


def _refund(seen: RefundSeen, writes: list[LedgerWrite]) -> None:
    """Money went back on an invoice (a refund or a credit note): how much, and the credits
    this transaction took back for it (its ledger entries for the invoice)."""
    invoice = db.session.get(Invoice, seen.invoice_id)
    if invoice is None:
        return
    taken = -sum(w.amount for w in writes if w.invoice_id == invoice.id and w.amount < 0)
    _send(
        invoice.user_id,
        "refund_issued",
        "Your refund is on its way",
        f"refund_issued:{invoice.id}:{seen.after}",
        amount=_money(seen.after - seen.before, invoice.currency),
        number=invoice.number or invoice.id,
        credits_taken=taken,
        action_url=public_url("account.index"),
    )


# --- non-essential mails ------------------------------------------------------------------------


def _receipt(invoice: Invoice) -> None:
    if current_app.config["STRIPE_SENDS_RECEIPTS"]:
        return  # Stripe's own receipt goes out: one is enough
    if invoice.status != "paid" or invoice.amount_paid <= 0:
        return
    _send(
        invoice.user_id,
        "receipt",
        f"Your receipt for {_money(invoice.amount_paid, invoice.currency)}",
        f"receipt:{invoice.id}",
        amount=_money(invoice.amount_paid, invoice.currency),
        number=invoice.number or invoice.id,
        paid_on=invoice.created,
        action_url=invoice.hosted_invoice_url or invoice.invoice_pdf or public_url("account.index"),
    )


def check_credits_low(user_id: int, *, change: int) -> None:
    """Tell the member once when this transaction took their balance from at or above their
    threshold to below it (`change`: the net of its entries for them); re-arm when it stands at
    or above it again. The caller holds the member's lock (ledger writers do), so the balance
    read here is the one the entries left (README "Low balance")."""
    user = db.session.get(User, user_id)
    if user is None:
        return
    threshold = credits_low_threshold(user)
    balance = credit_balance(user_id)
    if threshold <= 0 or balance >= threshold:
        if user.credits_low_notified:
            user.credits_low_notified = False  # re-armed for the next crossing
        return
    if balance - change < threshold:
        return  # below before this transaction too (or only a new threshold put it there)
    user.credits_low_notified = True
    last_entry = db.session.scalar(
        select(func.max(CreditEntry.id)).where(CreditEntry.user_id == user_id)
    )
    _send(
        user_id,
        "credits_low",
        "Your credits are running low",
        f"credits_low:{user_id}:{last_entry}",
        balance=balance,
        threshold=threshold,
        action_url=public_url("pricing.index"),
    )


def credits_low_threshold(user: User) -> int:
    from webapp.billing.low_balance import threshold_of

    return threshold_of(user)


def credit_balance(user_id: int) -> int:
    total = db.session.scalar(
        select(func.coalesce(func.sum(CreditEntry.amount), 0)).where(CreditEntry.user_id == user_id)
    )
    return int(total or 0)


def _before_commit(session: Session) -> None:
    """Before any commit that stored a refund or wrote credit entries, in that transaction,
    whatever did it (a webhook, the success page, the monthly scheduler, usage): the refund
    mail, then the credits-low check."""
    refunds: list[RefundSeen] = session.info.pop(REFUNDS_SEEN, None) or []
    writes: list[LedgerWrite] = session.info.pop(LEDGER_WRITES, None) or []
    if not (refunds or writes) or not has_app_context() or session is not db.session():
        return
    change: dict[int, int] = {}
    for write in writes:
        change[write.user_id] = change.get(write.user_id, 0) + write.amount
    with url_context():
        for seen in refunds:
            _refund(seen, writes)
        for user_id, net in sorted(change.items()):
            check_credits_low(user_id, change=net)


def _forget(session: Session) -> None:
    session.info.pop(LEDGER_WRITES, None)
    session.info.pop(REFUNDS_SEEN, None)


def init_app() -> None:
    if not orm_event.contains(Session, "before_commit", _before_commit):
        orm_event.listen(Session, "before_commit", _before_commit)
        orm_event.listen(Session, "after_rollback", _forget)


# --- preferences and unsubscribing ----------------------------------------------------------


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=UNSUBSCRIBE_SALT)


def unsubscribe_token(user_id: int, kind: str) -> str:
    return _serializer().dumps([user_id, kind])


def read_unsubscribe_token(token: str) -> tuple[int, str] | None:
    """(user id, kind) from a token we signed, or None for anything else."""
    try:
        value = _serializer().loads(token)
    except BadSignature:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not isinstance(value[0], int)
        or value[1] not in OPTIONAL_KINDS
    ):
        return None
    return value[0], value[1]


def set_mail_wanted(user: User, kind: str, wanted: bool) -> int:
    """Turn a non-essential kind on or off; off also cancels its messages not sent yet.

    Returns how many pending messages were cancelled. A message a worker is sending at this
    very moment (claimed, not yet marked sent) may still arrive: it left before the click.
    """
    setattr(user, OPTIONAL_KINDS[kind], wanted)
    if wanted:
        return 0
    cancelled = db.session.execute(
        update(OutgoingMail)
        .where(
            OutgoingMail.user_id == user.id,
            OutgoingMail.kind == kind,
            OutgoingMail.status == MailStatus.PENDING.value,
        )
        .values(status=MailStatus.CANCELED.value)
    )
    # An UPDATE's result is a CursorResult; SQLAlchemy 2.0's Session.execute does not say so.
    return cast("CursorResult[Any]", cancelled).rowcount or 0


# --- helpers ------------------------------------------------------------------------------


def _send(user_id: int, kind: str, subject: str, dedupe_key: str, **context: Any) -> bool:
    user = db.session.get(User, user_id)
    if user is None or user.deleted_at is not None or user.deactivated_at is not None:
        return False  # a deleted account's address is a placeholder; a deactivated one is shut
    unsubscribe_url = None
    if kind in OPTIONAL_KINDS:
        if not getattr(user, OPTIONAL_KINDS[kind]):
            return False
        unsubscribe_url = public_url("emails.unsubscribe", token=unsubscribe_token(user_id, kind))
    queued = queue_mail(
        user.email,
        kind,
        subject,
        dedupe_key,
        meta=MailMeta(user_id, kind, unsubscribe_url),
        **context,
    )
    if queued:
        log.info("billing mail %s queued for user %s (%s)", kind, user_id, dedupe_key)
    return queued


def _subscription(subscription_id: str) -> Subscription | None:
    return db.session.scalar(
        select(Subscription).where(Subscription.stripe_subscription_id == subscription_id)
    )


def _live_subscription_of(invoice: Invoice) -> Subscription | None:
    if invoice.stripe_subscription_id is None:
        return None
    row = _subscription(invoice.stripe_subscription_id)
    return row if row is not None and row.status in LIVE_STATUSES else None


def _plan_name(plan_id: str | None) -> str:
    from webapp.catalog import get_catalog

    plan = get_catalog().plans.get(plan_id or "")
    return plan.default_copy["name"] if plan else (plan_id or "your plan").capitalize()


def _money(cents: int | None, currency: str) -> str:
    cents = cents or 0
    try:
        return format_money(cents, currency)
    except KeyError:
        return f"{cents / 100:,.2f} {currency.upper()}"
