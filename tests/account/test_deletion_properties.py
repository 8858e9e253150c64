"""Invariants of a deletion, whatever came before it and whatever Stripe sends after it.

Hypothesis picks a plan and cycle, whether Stripe's webhooks arrive on time or only after the
deletion (the checkout's own `invoice.paid` included), how far the test clock runs before the
deletion and after it, and the order in which every event about the customer is then sent
again (as new events, as a late or repeated delivery from Stripe would be). After each run:

- no live subscription is left, at Stripe (read through the SDK) or in our rows;
- the credits ledger of the deleted account does not grow after the deletion: not from late
  events, not from renewals or yearly months the clock reaches (`credits grant-due`);
- every paid invoice Stripe has is still recorded here (the accounting record);
- the address appears in no user row, and in the outbox only in the confirmation mails.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.billing.member import LIVE, Member
from tests.billing_helpers import post_event, sandbox_events, subscribe
from tests.conftest import AuthActions, create_user, csrf_token, sql
from webapp.stripe_gateway import get_gateway

EMAIL = "ada@example.com"
PLANS = [("starter", "monthly"), ("professional", "yearly"), ("business", "monthly")]
_late_suffix = itertools.count()


def about(event: dict, customer_id: str, subscription_ids: set[str]) -> bool:
    obj = event["data"]["object"]
    return customer_id in (obj.get("customer"), obj.get("id")) or obj.get("id") in subscription_ids


def ledger_total(app, user_id: int) -> int:
    rows = sql(
        app, "select coalesce(sum(amount), 0) from credit_entries where user_id = :id", id=user_id
    )
    return int(rows[0][0])


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    plan=st.sampled_from(PLANS),
    webhooks_late=st.booleans(),
    days_before=st.sampled_from([0, 3, 35]),
    days_after=st.sampled_from([0, 40, 400]),
    order=st.randoms(use_true_random=False),
)
def test_after_a_deletion_nothing_stays_live_and_nothing_more_is_granted(
    app, plan, webhooks_late, days_before, days_after, order
):
    # The address of the last run's deleted account is free again: a new account takes it.
    user_id = create_user(app, EMAIL)
    with app.app_context():
        gateway = get_gateway()
        member = Member(app, user_id)
        if webhooks_late:
            # Stripe's events for everything until the deletion arrive an hour late.
            gateway.sandbox_instance.faults.set_webhooks("late", count=100, delay=3600)
            subscribe(member.client, *plan)  # no success page: only the webhooks would tell us
        else:
            member.subscribe(*plan)
        if days_before:
            member.advance(days_before)
    customer_id = member.customer_id()
    with app.app_context():
        subscription_ids = {s.id for s in member.stripe_subscriptions()}

    client = app.test_client()
    AuthActions(app, client).login()
    token = csrf_token(client, "/account/delete")
    data = {"csrf_token": token, "password": "correct horse battery", "confirm": "y"}
    assert client.post("/account/delete", data=data).status_code == 303
    granted_at_deletion = ledger_total(app, user_id)

    with app.app_context():
        sandbox = gateway.sandbox_instance
        sandbox.faults.clear()
        sandbox.webhooks.deliver_due(include_late=True)  # the late ones arrive now
    events = [e for e in sandbox_events(app) if about(e, customer_id, subscription_ids)]
    order.shuffle(events)
    for event in events:
        replay = {**event, "id": f"{event['id']}_again{next(_late_suffix)}"}
        assert post_event(app.test_client(), replay).status_code == 200
    with app.app_context():
        if days_after:
            member.advance(days_after)

        at_stripe = [s for s in member.stripe_subscriptions() if s.status in LIVE]
        paid = {
            invoice.id
            for invoice in gateway.client.v1.invoices.list(params={"customer": customer_id}).data
            if invoice.status == "paid"
        }
    assert at_stripe == []
    live_here = sql(
        app,
        "select count(*) from subscriptions where user_id = :id"
        " and status in ('active', 'trialing', 'past_due')",
        id=user_id,
    )
    assert live_here == [(0,)]
    assert ledger_total(app, user_id) == granted_at_deletion
    if webhooks_late:
        assert granted_at_deletion == 0  # nothing had arrived; nothing is granted after
    recorded = {
        row[0] for row in sql(app, "select id from invoices where user_id = :id", id=user_id)
    }
    assert paid <= recorded
    assert sql(app, "select count(*) from users where email = :e", e=EMAIL) == [(0,)]
    mail = sql(app, "select dedupe_key from outgoing_mail where to_address = :e", e=EMAIL)
    assert all(key.startswith("account-deleted:") for (key,) in mail)
    assert (f"account-deleted:{user_id}",) in mail
