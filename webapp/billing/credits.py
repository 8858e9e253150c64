"""The credits ledger: grants for paid periods, and the balance derived from it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from webapp.billing.base import dig, from_timestamp
from webapp.catalog import Plan, UnknownPlan, get_catalog
from webapp.database import insert_or_ignore
from webapp.extensions import db
from webapp.models import CreditEntry, Subscription
from webapp.models.base import utcnow

log = logging.getLogger(__name__)

PAID_INVOICE_REASONS = frozenset({"subscription_create", "subscription_cycle"})


@dataclass(frozen=True)
class CreditSummary:
    balance: int
    total_granted: int
    total_used: int
    recent: list[CreditEntry]


def credit_summary(user_id: int, recent: int = 10) -> CreditSummary:
    """The balance is derived from the ledger, never stored on its own."""
    granted, used = db.session.execute(
        select(
            func.coalesce(func.sum(CreditEntry.amount).filter(CreditEntry.amount > 0), 0),
            func.coalesce(-func.sum(CreditEntry.amount).filter(CreditEntry.amount < 0), 0),
        ).where(CreditEntry.user_id == user_id)
    ).one()
    entries = db.session.scalars(
        select(CreditEntry)
        .where(CreditEntry.user_id == user_id)
        .order_by(CreditEntry.created_at.desc(), CreditEntry.id.desc())
        .limit(recent)
    ).all()
    return CreditSummary(int(granted) - int(used), int(granted), int(used), list(entries))


# --- Credits ----------------------------------------------------------------------------------


def add_months(moment: datetime, months: int) -> datetime:
    """`moment` plus whole calendar months, clamping the day (Jan 31 + 1 month = Feb 28/29)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    for day in (moment.day, 30, 29, 28):
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable: every month has 28 days")


def _plan_name(plan: Plan) -> str:
    # The catalog's name, not the published copy: ledger lines are records, and reading the copy
    # could write its first revision in another connection while this transaction holds SQLite.
    return plan.default_copy["name"]


def _period_key(subscription_id: str, month_start: datetime) -> str:
    return f"{subscription_id}:{month_start.date().isoformat()}"


def _current_month_start(subscription: Subscription, now: datetime) -> datetime | None:
    start = subscription.current_period_start
    if start is None:
        return None
    months = 0
    while months < 11 and add_months(start, months + 1) <= now:
        months += 1
    return add_months(start, months)


def grant_credits(
    *,
    user_id: int,
    amount: int,
    grant_key: str,
    period_key: str | None,
    description: str,
    subscription_id: str | None,
) -> bool:
    """Add one grant to the ledger; False if `grant_key` was granted already (a replay)."""
    if amount <= 0:
        return False
    granted = insert_or_ignore(
        CreditEntry,
        {
            "user_id": user_id,
            "amount": amount,
            "kind": "grant",
            "description": description,
            "grant_key": grant_key,
            "period_key": period_key,
            "stripe_subscription_id": subscription_id,
        },
        ["grant_key"],
    )
    if granted:
        log.info("granting %s credits to user %s (%s)", amount, user_id, grant_key)
    return granted


def grant_invoice_credits(invoice: Any, subscription: Subscription) -> None:
    """A paid subscription invoice grants its plan's monthly credits, once per invoice."""
    if invoice.status != "paid" or invoice.billing_reason not in PAID_INVOICE_REASONS:
        return  # an upgrade's proration invoice is covered by `top_up_after_upgrade`
    line = invoice["lines"]["data"][0]
    plan = _plan_of_invoice_line(line) or get_catalog().plan(subscription.plan_id)
    month_start = from_timestamp(dig(line, "period", "start")) or subscription.current_period_start
    subscription_id = subscription.stripe_subscription_id
    grant_credits(
        user_id=subscription.user_id,
        amount=plan.monthly_credits,
        grant_key=f"invoice:{invoice.id}",
        period_key=_period_key(subscription_id, month_start),
        description=f"{_plan_name(plan)} plan: monthly credits",
        subscription_id=subscription_id,
    )
    top_up_after_upgrade(subscription)


def _plan_of_invoice_line(line: Any) -> Plan | None:
    """The plan an invoice line charged for, from its price's lookup key, when present."""
    price = dig(line, "pricing", "price_details", "price")
    lookup_key = None if isinstance(price, str) else dig(price, "lookup_key")
    plan_id = dig(line, "metadata", "plan")
    try:
        if lookup_key:
            return get_catalog().plan(get_catalog().price_by_lookup_key(lookup_key).plan_id)
        return get_catalog().plan(plan_id) if plan_id else None
    except UnknownPlan:
        return None


def top_up_after_upgrade(subscription: Subscription) -> None:
    """After an upgrade, bring this month's grants up to the new plan's credits, once.

    Only a month that was already granted (paid) is topped up; a downgrade takes nothing back and
    simply grants less from the next renewal.
    """
    if subscription.status not in ("active", "trialing"):
        return
    month_start = _current_month_start(subscription, utcnow())
    if month_start is None:
        return
    period_key = _period_key(subscription.stripe_subscription_id, month_start)
    granted = db.session.scalar(
        select(func.coalesce(func.sum(CreditEntry.amount), 0)).where(
            CreditEntry.period_key == period_key
        )
    )
    plan = get_catalog().plan(subscription.plan_id)
    if granted and plan.monthly_credits > granted:
        grant_credits(
            user_id=subscription.user_id,
            amount=plan.monthly_credits - granted,
            grant_key=f"topup:{period_key}:{plan.monthly_credits}",
            period_key=period_key,
            description=f"Upgrade to {_plan_name(plan)}: the rest of this month",
            subscription_id=subscription.stripe_subscription_id,
        )


def grant_due_credits(now: datetime | None = None) -> int:
    """Yearly plans: each new month since the period began gets the monthly credits, once."""
    now = now or utcnow()
    granted = 0
    yearly = db.session.scalars(
        select(Subscription).where(
            Subscription.cycle == "yearly", Subscription.status.in_(("active", "trialing"))
        )
    ).all()
    for subscription in yearly:
        month_start = _current_month_start(subscription, now)
        if month_start is None or month_start == subscription.current_period_start:
            continue  # month 0 is granted by the paid invoice
        plan = get_catalog().plan(subscription.plan_id)
        period_key = _period_key(subscription.stripe_subscription_id, month_start)
        granted += grant_credits(
            user_id=subscription.user_id,
            amount=plan.monthly_credits,
            grant_key=f"month:{period_key}",
            period_key=period_key,
            description=f"{_plan_name(plan)} plan: monthly credits",
            subscription_id=subscription.stripe_subscription_id,
        )
        db.session.commit()
    return granted
