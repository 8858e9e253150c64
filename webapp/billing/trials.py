"""Free trials: who is offered one, and what one grants.

Invariants (README, "Free trials"):

- **A trial is offered at most once per person.** Checkout sends `trial_period_days` only to a
  member whose account shows no trial: no subscription of theirs with a `trial_start`, and no
  trial allowance in their ledger. The pricing card and the checkout page say "14-day free
  trial" only to such a member (and to visitors not logged in).
- **A trial grants the plan's `trial_credits` once per person, ever**: one ledger entry with the
  unique key `trial:<user id>`, written the first time we read, from Stripe, a subscription of
  theirs that is `trialing`. A second trial (were Stripe ever to start one), a replayed,
  duplicated or late event, a cancel and re-subscribe: nothing more.
- **A trial's own invoice buys no plan credits**: its $0 line is marked `trial` and stored with
  no monthly credits (stripe_facts, invoices). The first period after the trial is paid by the
  first non-zero invoice (`subscription_cycle`), which grants that period's monthly credits
  through the usual settling (billing/credits.py), exactly once.
- **A trial that ends without a card grants nothing more.** Its allowance stays (it was given
  free and may be spent); the subscription ends `canceled` (checkout_options.
  TRIAL_END_WITHOUT_CARD) and the member may subscribe again, paying at once.
- A deleted account is granted nothing.
"""

from __future__ import annotations

from sqlalchemy import exists, func, or_, select

from webapp.billing.credits import add_entry
from webapp.billing.stripe_facts import SubscriptionFacts
from webapp.catalog import Plan, get_catalog, get_checkout_options
from webapp.extensions import db
from webapp.models import CreditEntry, Subscription, User


def trial_grant_key(user_id: int) -> str:
    return f"trial:{user_id}"


def had_trial(user_id: int) -> bool:
    """True once the member has had a free trial (its subscription or its allowance)."""
    return bool(
        db.session.scalar(
            select(
                or_(
                    exists().where(
                        Subscription.user_id == user_id, Subscription.trial_start.is_not(None)
                    ),
                    exists().where(CreditEntry.grant_key == trial_grant_key(user_id)),
                )
            )
        )
    )


def trial_days_for(user_id: int | None, plan: Plan) -> int:
    """The free trial `plan` offers this person (None: not logged in), in days; 0 for none."""
    return offered_trial_days(plan, eligible=user_id is None or not had_trial(user_id))


def offered_trial_days(plan: Plan, *, eligible: bool) -> int:
    """The trial `plan` offers someone who may (`eligible`) or may no longer have one."""
    if not eligible or not get_checkout_options().free_trials:
        return 0
    return max(plan.trial_period_days, 0)


def grant_trial_credits(facts: SubscriptionFacts, user_id: int) -> bool:
    """The trial allowance, once per person: True if this call granted it.

    The caller holds the member's lock (sync.py), so the unique key alone decides."""
    if facts.status != "trialing" or facts.trial_start is None or facts.price.plan_id is None:
        return False
    plan = get_catalog().plans.get(facts.price.plan_id)
    if plan is None or plan.trial_credits <= 0:
        return False
    if db.session.scalar(select(User.deleted_at).where(User.id == user_id)) is not None:
        return False
    return add_entry(
        user_id=user_id,
        amount=plan.trial_credits,
        grant_key=trial_grant_key(user_id),
        description=f"{plan.default_copy['name']} free trial: trial credits",
        subscription_id=facts.id,
    )


def trial_credits_granted(user_id: int, subscription_id: str) -> int:
    """What this subscription's trial granted (0 if the allowance came with an earlier one)."""
    total = db.session.scalar(
        select(func.coalesce(func.sum(CreditEntry.amount), 0)).where(
            CreditEntry.grant_key == trial_grant_key(user_id),
            CreditEntry.stripe_subscription_id == subscription_id,
        )
    )
    return int(total or 0)
