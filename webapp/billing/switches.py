"""A plan switch from our own pages: its price first (Stripe's preview), then, once confirmed,
the switch itself, through the plan-change policy the portal follows.

Invariants (README, "Switching from the pricing page"):

- Nothing is charged or changed before the person confirms: showing the terms only previews.
- The figure shown is Stripe's (`invoices.create_preview`), never our own arithmetic, and the
  switch is charged exactly that: the upgrade is prorated as of the previewed `proration_date`,
  and the confirmation re-previews with it and refuses (showing the new terms) if the amount
  moved, the preview is old, or the subscription changed meanwhile.
- A confirmation applies at most once: one switch per member at a time (a lease), a state check
  inside it (already on that plan, or already scheduled: done, nothing more), and an
  idempotency key naming the subscription, both prices and the proration moment.
- Upgrades apply at once and are invoiced at once; downgrades and shorter cycles wait for the
  period end through a subscription schedule; which is which is `PlanChangePolicy.switch_timing`,
  the function behind the portal configuration's conditions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from webapp.billing.base import BillingError, call_stripe, dig, from_timestamp, required_timestamp
from webapp.billing.errors import provider_errors
from webapp.billing.leases import Busy, lease
from webapp.billing.stripe_facts import SubscriptionFacts, read_subscription
from webapp.billing.subscriptions import live_subscription
from webapp.billing.sync import (
    apply_invoice_state,
    apply_subscription_state,
    fetch_invoice_state,
    fetch_subscription_state,
)
from webapp.catalog import UnknownPlan, get_catalog
from webapp.extensions import db
from webapp.models import User
from webapp.models.base import utcnow
from webapp.stripe_gateway import get_gateway

log = logging.getLogger(__name__)

# A preview older than this (on Stripe's clock) is shown again rather than charged: its
# proration moment would credit time the member has since used.
STALE_SECONDS = 15 * 60


class SwitchRefused(BillingError):
    """A switch the rules refuse; the message says why and what to do instead."""

    code = "switch_refused"
    status = 409


class UnknownSwitch(SwitchRefused):
    code = "unknown_plan"
    status = 404


class SwitchDone(BillingError):
    """The switch asked for is already in place (a second submit, the back button)."""

    code = "switch_done"
    status = 200


class SwitchStale(BillingError):
    """What was shown no longer holds; `terms` is what holds now."""

    code = "switch_stale"
    status = 409

    def __init__(self, message: str, terms: SwitchTerms) -> None:
        super().__init__(message)
        self.terms = terms


@dataclass(frozen=True)
class SwitchTerms:
    """What a switch will do, as Stripe previews it; what the confirmation page shows."""

    subscription_id: str
    item_id: str
    from_plan: str
    from_cycle: str
    from_price_id: str
    plan_id: str
    cycle: str
    price_id: str
    timing: str  # "immediately" | "period_end"
    currency: str
    amount_now: int  # cents charged on confirming (0 for a period-end switch)
    credits_now: int  # credits the paid switch grants at once
    starts_at: datetime  # now (Stripe's clock) or the period end
    renewal_amount: int | None  # the recurring charge on the new price, when it first bills
    proration_date: int | None  # the moment the upgrade's proration is computed for

    @property
    def immediate(self) -> bool:
        return self.timing == "immediately"


@provider_errors
def switch_terms(user: User, plan_id: str, cycle: str) -> SwitchTerms:
    """Preview switching the member's live plan to (plan_id, cycle); changes nothing."""
    facts, stripe_subscription = _current(user, plan_id, cycle)
    return _preview(facts, stripe_subscription, plan_id, cycle, proration_date=None)


@provider_errors
def confirm_switch(
    user: User,
    plan_id: str,
    cycle: str,
    *,
    proration_date: int | None,
    shown_amount: int,
) -> SwitchTerms:
    """Apply the switch whose terms were shown (`shown_amount` cents now, or at the renewal for
    a period-end switch), if they still hold; SwitchStale with the new terms if not."""
    try:
        with lease(f"switch:{user.id}", hold_seconds=120, wait_seconds=20):
            facts, stripe_subscription = _current(user, plan_id, cycle)
            fresh = _preview(facts, stripe_subscription, plan_id, cycle, proration_date=None)
            if fresh.immediate:
                terms = _recheck_upgrade(facts, stripe_subscription, fresh, proration_date)
                if terms.amount_now != shown_amount:
                    raise SwitchStale("The amount changed since you saw it.", terms)
                _apply_now(terms)
            else:
                if fresh.renewal_amount != shown_amount:
                    raise SwitchStale("The price changed since you saw it.", fresh)
                _schedule(fresh, facts)
                terms = fresh
    except Busy:
        raise SwitchRefused("Your previous request is still being processed.") from None
    return terms


# --- reading the member's subscription ---------------------------------------------------------


def _current(user: User, plan_id: str, cycle: str) -> tuple[SubscriptionFacts, Any]:
    """The member's live subscription as Stripe has it now, after the rules' checks."""
    catalog = get_catalog()
    try:
        catalog.price(plan_id, cycle)
    except UnknownPlan:
        raise UnknownSwitch("We don't sell that plan. Choose one on the pricing page.") from None
    row = live_subscription(user.id)
    if row is None:
        raise SwitchRefused("You have no plan to switch from yet. Choose a plan to get started.")
    fetched_at = utcnow()
    stripe_subscription = call_stripe(
        get_gateway().retrieve_subscription, row.stripe_subscription_id, expand=["schedule"]
    )
    facts = read_subscription(stripe_subscription, fetched_at)
    price = facts.price
    if price.plan_id == plan_id and price.cycle == cycle:
        raise SwitchDone("You are on this plan.")
    pending = facts.pending
    if pending is not None and (pending.plan_id, pending.cycle) == (plan_id, cycle):
        raise SwitchDone("Your switch to this plan is scheduled.")
    if facts.status == "past_due":
        raise SwitchRefused(
            "Your last payment did not go through. Pay it from Manage billing first; then you "
            "can switch plan."
        )
    if facts.status != "active" or price.plan_id is None or price.cycle is None:
        raise SwitchRefused("This plan cannot be switched from here. Use Manage billing.")
    if facts.cancel_at or facts.cancel_at_period_end:
        raise SwitchRefused(
            "Your plan is set to end. Resume it from Manage billing first; then you can switch."
        )
    if pending is not None:
        raise SwitchRefused(
            "A switch is already scheduled. Cancel it from Manage billing to choose another."
        )
    return facts, stripe_subscription


def _preview(
    facts: SubscriptionFacts,
    stripe_subscription: Any,
    plan_id: str,
    cycle: str,
    *,
    proration_date: int | None,
) -> SwitchTerms:
    catalog = get_catalog()
    policy = catalog.policy
    assert facts.price.plan_id is not None and facts.price.cycle is not None  # _current checked
    current = catalog.price(facts.price.plan_id, facts.price.cycle)
    wanted = catalog.price(plan_id, cycle)
    timing = policy.switch_timing(current, wanted)
    gateway = get_gateway()
    price = call_stripe(gateway.price_for, wanted.lookup_key)
    item = stripe_subscription["items"]["data"][0]
    common = {
        "subscription_id": facts.id,
        "item_id": item.id,
        "from_plan": facts.price.plan_id,
        "from_cycle": facts.price.cycle,
        "from_price_id": facts.price.id,
        "plan_id": plan_id,
        "cycle": cycle,
        "price_id": price.id,
        "timing": timing,
    }
    if timing == "immediately":
        invoice = call_stripe(
            gateway.preview_switch,
            facts.id,
            item_id=item.id,
            price_id=price.id,
            proration_behavior="always_invoice",
            reset_billing_cycle=policy.upgrade_billing == "new_period",
            proration_date=proration_date,
        )
        moment = (
            dig(invoice, "parent", "subscription_details", "subscription_proration_date")
            or proration_date
            or invoice.created
        )
        return SwitchTerms(
            **common,
            currency=invoice.currency,
            amount_now=invoice.amount_due,
            credits_now=catalog.plan(plan_id).monthly_credits,
            starts_at=required_timestamp(moment),
            renewal_amount=None,
            proration_date=moment,
        )
    invoice = call_stripe(
        gateway.preview_switch,
        facts.id,
        item_id=item.id,
        price_id=price.id,
        proration_behavior="none",
        recurring=True,
    )
    starts_at = from_timestamp(dig(item, "current_period_end"))
    assert starts_at is not None
    return SwitchTerms(
        **common,
        currency=invoice.currency,
        amount_now=0,
        credits_now=0,
        starts_at=starts_at,
        renewal_amount=invoice.amount_due,
        proration_date=None,
    )


def _recheck_upgrade(
    facts: SubscriptionFacts,
    stripe_subscription: Any,
    fresh: SwitchTerms,
    proration_date: int | None,
) -> SwitchTerms:
    """The terms as of the moment that was shown, if that moment is recent and still in this
    period; else SwitchStale with the terms as of now."""
    item = stripe_subscription["items"]["data"][0]
    start = dig(item, "current_period_start") or 0
    now = fresh.proration_date or 0
    if proration_date is None or not start <= proration_date <= now:
        raise SwitchStale("Your plan changed since you saw this page.", fresh)
    if now - proration_date > STALE_SECONDS:
        raise SwitchStale("This page was open a while, so here is the amount as of now.", fresh)
    return _preview(
        facts, stripe_subscription, fresh.plan_id, fresh.cycle, proration_date=proration_date
    )


# --- applying ----------------------------------------------------------------------------------


def _apply_now(terms: SwitchTerms) -> None:
    """The upgrade, charged at once as previewed; our copies follow at once (the webhooks,
    arriving later, find nothing left to do)."""
    assert terms.proration_date is not None
    policy = get_catalog().policy
    subscription = call_stripe(
        get_gateway().switch_price_now,
        terms.subscription_id,
        item_id=terms.item_id,
        price_id=terms.price_id,
        reset_billing_cycle=policy.upgrade_billing == "new_period",
        proration_date=terms.proration_date,
        idempotency_key=_key(terms, str(terms.proration_date)),
    )
    log.info(
        "switch: %s from %s to %s now, %s cents",
        terms.subscription_id,
        terms.from_price_id,
        terms.price_id,
        terms.amount_now,
    )
    _sync(terms.subscription_id, subscription.latest_invoice)


def _schedule(terms: SwitchTerms, facts: SubscriptionFacts) -> None:
    schedule = call_stripe(
        get_gateway().schedule_price_at_period_end,
        terms.subscription_id,
        schedule_id=facts.schedule_id,  # an idle schedule (no pending switch) is reused
        price_id=terms.price_id,
        idempotency_key=_key(terms, str(int(terms.starts_at.timestamp()))),
    )
    log.info(
        "switch: %s from %s to %s at %s (schedule %s)",
        terms.subscription_id,
        terms.from_price_id,
        terms.price_id,
        terms.starts_at.isoformat(),
        schedule.id,
    )
    _sync(terms.subscription_id, None)


def _key(terms: SwitchTerms, moment: str) -> str:
    return f"switch:{terms.subscription_id}:{terms.from_price_id}:{terms.price_id}:{moment}"


def _sync(subscription_id: str, invoice: Any) -> None:
    """Store what Stripe now has, through the same idempotent functions as the webhooks."""
    invoice_id = invoice if isinstance(invoice, str) or invoice is None else invoice.id
    if invoice_id:
        state = fetch_invoice_state(invoice_id)
        apply_invoice_state(state)
    else:
        apply_subscription_state(fetch_subscription_state(subscription_id))
    db.session.commit()
