"""The plan-change policy: how a switch, a cancellation and a refund play out, as data.

`catalog.toml`'s `[plan_changes]` table is the one statement of the policy. Everything that acts
on it or describes it is derived from it here: Stripe's billing-portal configuration
(`stripe_catalog.desired_portal_configuration`), the sandbox portal (which obeys that
configuration), the pricing page's FAQ answers and the words next to a "Switch" button.

Which switches wait for the period end follows Stripe's own portal conditions
(`schedule_at_period_end.conditions`): `decreasing_item_amount` (the new price's amount is lower
than the current one's, whatever their intervals) and `shortening_interval` (yearly to monthly).
Every other switch applies at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

TIMINGS = ("immediately", "period_end")
UPGRADE_BILLING = ("new_period", "prorate")
CYCLE_ORDER = {"monthly": 1, "yearly": 12}
# Stripe's portal cancellation reasons (billing_portal.configuration, cancellation_reason.options).
CANCELLATION_REASONS = (
    "customer_service",
    "low_quality",
    "missing_features",
    "other",
    "switched_service",
    "too_complex",
    "too_expensive",
    "unused",
)

CHANGE_QUESTION = "Can I change or cancel my plan?"
CREDITS_QUESTION = "What happens to my credits when I switch plan or get a refund?"
POLICY_QUESTIONS = (CHANGE_QUESTION, CREDITS_QUESTION)


class PolicyError(ValueError):
    """The `[plan_changes]` table is missing something or names an unknown value."""


class PriceTerms(Protocol):
    """What the policy needs to know of a price (a catalog `Price` is one)."""

    @property
    def amount_cents(self) -> int: ...

    @property
    def cycle(self) -> str: ...  # "monthly" | "yearly"


@dataclass(frozen=True)
class PlanChangePolicy:
    # How a switch to a lower price or a shorter cycle takes effect.
    downgrades: str
    # How a cancellation takes effect.
    cancellations: str
    # "new_period": an upgrade starts a new billing period at once (Stripe's billing cycle
    # anchor reset to now), billed in full less the unused part of the old period.
    # "prorate": the billing date stays and only the difference for the rest of it is billed.
    upgrade_billing: str
    cancellation_reasons: tuple[str, ...]

    def is_downgrade(self, current: PriceTerms, new: PriceTerms) -> bool:
        """Stripe's two portal conditions: a lower amount, or a shorter billing interval."""
        shorter = CYCLE_ORDER[new.cycle] < CYCLE_ORDER[current.cycle]
        return new.amount_cents < current.amount_cents or shorter

    def switch_timing(self, current: PriceTerms, new: PriceTerms) -> str:
        """ "immediately" or "period_end" for a switch from `current` to `new`."""
        if self.is_downgrade(current, new):
            return self.downgrades
        return "immediately"

    # --- the words pages use (the FAQ, the switch buttons) -----------------------------------

    def change_answer(self) -> str:
        """The FAQ answer to CHANGE_QUESTION, in Markdown."""
        if self.upgrade_billing == "new_period":
            upgrade = (
                "A switch to a higher price, or from monthly to yearly billing, applies at once "
                "and starts a new billing period that day: you pay the new price less the unused "
                "part of your current period, and get the new plan's monthly credits straight away."
            )
        else:
            upgrade = (
                "A switch to a higher price, or from monthly to yearly billing, applies at once: "
                "you pay the difference for the rest of your current period, and get the extra "
                "credits for the rest of the month as soon as that payment goes through."
            )
        if self.downgrades == "period_end":
            downgrade = (
                "A switch to a lower price, or from yearly to monthly billing, takes effect at the "
                "end of your current billing period; until then you keep your current plan."
            )
        else:
            downgrade = (
                "A switch to a lower price, or from yearly to monthly billing, also applies at "
                "once; the unused part of your current period is credited to your next invoices."
            )
        if self.cancellations == "period_end":
            cancel = (
                "If you cancel, your plan keeps working until the end of the period you paid for, "
                "and you can change your mind until then."
            )
        else:
            cancel = "If you cancel, your plan ends at once."
        return f"Yes, at any time from *Manage billing*. {upgrade} {downgrade} {cancel}"

    def credits_answer(self) -> str:
        """The FAQ answer to CREDITS_QUESTION: credits follow the money (README, "Credits")."""
        return (
            "Credits follow what you pay for. Each billing month grants your plan's monthly "
            "credits once, and they never expire. Whenever money goes back to you (a refund, a "
            "lost card dispute, or the unused part of your period credited to you when you "
            "switch plan), the credits that money bought are taken back in the same proportion; "
            "your balance can go below zero until your next monthly credits arrive."
        )

    def faq(self, copy_entries: list[dict[str, str]]) -> list[dict[str, str]]:
        """The published FAQ followed by the entries the policy owns.

        A copy entry asking one of the policy's questions is dropped: an old revision that still
        answers it in its own words must never contradict the policy in force.
        """
        owned = [
            {"question": CHANGE_QUESTION, "answer": self.change_answer()},
            {"question": CREDITS_QUESTION, "answer": self.credits_answer()},
        ]
        asked = {question.strip().casefold() for question in POLICY_QUESTIONS}
        kept = [e for e in copy_entries if e["question"].strip().casefold() not in asked]
        return kept + owned

    def switch_hint(self, current: PriceTerms, new: PriceTerms) -> str:
        """What a "Switch" button to `new` will do, in a few words."""
        if self.switch_timing(current, new) == "period_end":
            return "From the end of your current period"
        return "Applies at once"


def parse_policy(raw: Any) -> PlanChangePolicy:
    """Validate the catalog's `[plan_changes]` table."""
    if not isinstance(raw, dict):
        raise PolicyError("catalog: [plan_changes] is missing")
    values = {}
    for key, allowed in (
        ("downgrades", TIMINGS),
        ("cancellations", TIMINGS),
        ("upgrade_billing", UPGRADE_BILLING),
    ):
        value = raw.get(key)
        if value not in allowed:
            raise PolicyError(f"plan_changes.{key} must be one of {', '.join(allowed)}")
        values[key] = value
    reasons = raw.get("cancellation_reasons", [])
    if not isinstance(reasons, list) or not set(reasons) <= set(CANCELLATION_REASONS):
        raise PolicyError(
            f"plan_changes.cancellation_reasons must be a list of {', '.join(CANCELLATION_REASONS)}"
        )
    unknown = set(raw) - {*values, "cancellation_reasons"}
    if unknown:
        raise PolicyError(f"plan_changes: unknown key(s) {', '.join(sorted(unknown))}")
    return PlanChangePolicy(cancellation_reasons=tuple(reasons), **values)
