"""The plan-change policy: which switches wait, and the words every page uses for it."""

import pytest

from webapp.catalog import load_catalog
from webapp.plan_changes import CHANGE_QUESTION, CREDITS_QUESTION, PolicyError, parse_policy

CATALOG = load_catalog()
POLICY = CATALOG.policy


def price(key):
    return CATALOG.price_by_lookup_key(key)


@pytest.mark.parametrize(
    ("current", "new", "timing"),
    [
        ("starter_monthly", "agency_monthly", "immediately"),  # a higher price
        ("starter_monthly", "starter_yearly", "immediately"),  # monthly → yearly
        ("business_monthly", "starter_yearly", "immediately"),  # yearly, and dearer per charge
        ("agency_monthly", "starter_monthly", "period_end"),  # a lower price
        ("agency_monthly", "starter_yearly", "period_end"),  # a lower amount, whatever the cycle
        ("starter_yearly", "agency_monthly", "period_end"),  # a shorter interval
        ("professional_yearly", "professional_monthly", "period_end"),
    ],
)
def test_downgrades_wait_for_the_period_end_as_stripes_portal_conditions_say(current, new, timing):
    assert POLICY.switch_timing(price(current), price(new)) == timing


def test_the_faq_states_the_policy_and_replaces_copy_that_asks_the_same_question():
    stale = {"question": "can i change or cancel my plan? ", "answer": "Downgrades apply at once."}
    kept = {"question": "What is a credit?", "answer": "One request."}
    faq = POLICY.faq([kept, stale])
    assert [entry["question"] for entry in faq] == [
        "What is a credit?",
        CHANGE_QUESTION,
        CREDITS_QUESTION,
    ]
    change = faq[1]["answer"]
    assert "applies at once and starts a new billing period" in change
    assert "takes effect at the end of your current billing period" in change
    assert "keeps working until the end of the period" in change
    assert "taken back in the same proportion" in faq[2]["answer"]


def test_another_policy_says_other_words():
    policy = parse_policy(
        {"downgrades": "immediately", "cancellations": "immediately", "upgrade_billing": "prorate"}
    )
    answer = policy.change_answer()
    assert "you pay the difference for the rest of your current period" in answer
    assert "also applies at once" in answer and "your plan ends at once" in answer
    assert policy.switch_hint(price("agency_monthly"), price("starter_monthly")) == (
        "Applies at once"
    )


@pytest.mark.parametrize(
    "raw",
    [
        None,
        {"downgrades": "later", "cancellations": "period_end", "upgrade_billing": "new_period"},
        {"downgrades": "period_end", "cancellations": "period_end", "upgrade_billing": "now"},
        {
            "downgrades": "period_end",
            "cancellations": "period_end",
            "upgrade_billing": "new_period",
            "cancellation_reasons": ["bored"],
        },
        {
            "downgrades": "period_end",
            "cancellations": "period_end",
            "upgrade_billing": "new_period",
            "refunds": "never",
        },
    ],
)
def test_a_bad_policy_is_refused(raw):
    with pytest.raises(PolicyError):
        parse_policy(raw)
