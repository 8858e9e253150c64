"""Low balance: the member's threshold, and whether their balance stands below it.

A member warns themselves either at a number of credits (`credits_low_threshold`, or the site's
CREDITS_LOW_THRESHOLD when they never chose) or at a share of their live plan's monthly credits
(`credits_low_percent`, rounded up to whole credits). A share with no live plan is no threshold:
there is no allowance to take a share of (the preferences page refuses to choose it then).

Invariants (README "Low balance"):

- **One mail per downward crossing.** A transaction that writes ledger entries crosses when the
  balance before it stood at or above the threshold and the balance after it stands below
  (billing/emails.py `check_credits_low`, in that transaction, under the member's lock that
  every ledger writer takes). Staying below, or a new threshold chosen above the balance, is no
  crossing; climbing back to the threshold re-arms the next one.
- **The banner shows while the balance is below the threshold**, whatever the mail
  preferences, for a member who has ever had credits (a new account with none is not "running
  low"); a threshold of 0 (or 0 %) turns both off.
"""

from __future__ import annotations

import math

from flask import current_app
from sqlalchemy import func, select

from webapp.extensions import db
from webapp.models import CreditEntry, User


def plan_allowance(user_id: int) -> int | None:
    """The monthly credits of the member's live plan, or None without one."""
    from webapp.billing.subscriptions import live_subscription
    from webapp.catalog import get_catalog

    subscription = live_subscription(user_id)
    if subscription is None:
        return None
    plan = get_catalog().plans.get(subscription.plan_id or "")
    return plan.monthly_credits if plan is not None else None


def threshold_of(user: User) -> int:
    """The balance under which the member is low, in credits (0: never)."""
    if user.credits_low_percent is not None:
        allowance = plan_allowance(user.id)
        if allowance is None:
            return 0
        return math.ceil(allowance * user.credits_low_percent / 100)
    if user.credits_low_threshold is not None:
        return user.credits_low_threshold
    return int(current_app.config["CREDITS_LOW_THRESHOLD"])


def ledger_state(user_id: int) -> tuple[int, int]:
    """(balance, number of entries) of the member's ledger, in one query."""
    balance, entries = db.session.execute(
        select(func.coalesce(func.sum(CreditEntry.amount), 0), func.count(CreditEntry.id)).where(
            CreditEntry.user_id == user_id
        )
    ).one()
    return int(balance or 0), int(entries or 0)


def is_low(user_id: int) -> bool:
    """Should the member see the low-balance banner now?"""
    user = db.session.get(User, user_id)
    if user is None or user.deleted_at is not None:
        return False
    threshold = threshold_of(user)
    balance, entries = ledger_state(user_id)
    return entries > 0 and threshold > 0 and balance < threshold


def banner_shown(user_id: int) -> bool:
    """`is_low`, from the member cache (dropped whenever their user, subscription or ledger
    rows change, so a debit shows the banner on the next page)."""
    from webapp import member_cache

    return member_cache.cached(user_id, "low balance", lambda: is_low(user_id))
