"""Switching plan from our own confirmation page (webapp/billing/switches.py): the amount shown
is what the sandbox then charges, to the cent, through the real SDK; nothing happens before
the confirmation, and a confirmation applies once."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.billing.member import Member
from tests.conftest import sql
from webapp.stripe_gateway import get_gateway


@pytest.fixture
def member(app, user_id):
    with app.app_context():
        yield Member(app, user_id)


def cents(text: str) -> int:
    dollars, rest = re.fullmatch(r"\$([\d,]+)\.(\d\d)", text.strip()).groups()
    return int(dollars.replace(",", "")) * 100 + int(rest)


def shown(html: str, testid: str) -> str:
    match = re.search(rf'data-testid="{testid}">([^<]*)<', html)
    assert match, f"no {testid} on the page: {html[:2000]}"
    return match.group(1)


def form_of(html: str) -> dict[str, str]:
    """The confirmation form's fields, as the browser would send them."""
    form = html[html.index('action="/billing/switch"') :]
    form = form[: form.index("</form>")]
    return dict(re.findall(r'name="(\w+)"[^>]*value="([^"]*)"', form))


def open_switch(member: Member, plan: str, cycle: str):
    return member.client.get(f"/billing/switch?plan={plan}&cycle={cycle}")


def invoices(member: Member) -> list[Any]:
    customer = member.customer_id()
    return list(get_gateway().client.v1.invoices.list(params={"customer": customer}).data)


def plan_row(app) -> tuple:
    [row] = sql(
        app,
        "select plan_id, cycle, pending_plan_id, pending_cycle from subscriptions "
        "where status in ('active', 'past_due', 'trialing')",
    )
    return tuple(row)


UPGRADES = [
    ("starter", "monthly", "business", "monthly"),
    ("professional", "yearly", "business", "yearly"),
    ("professional", "monthly", "professional", "yearly"),
    ("business", "monthly", "starter", "yearly"),  # a higher amount: at once (README)
]
DOWNGRADES = [
    ("business", "monthly", "starter", "monthly"),
    ("business", "yearly", "starter", "yearly"),
    ("professional", "yearly", "professional", "monthly"),  # a shorter cycle
]


@pytest.mark.parametrize(("plan", "cycle", "to_plan", "to_cycle"), UPGRADES)
def test_an_upgrade_charges_exactly_what_the_page_showed(
    app, member, plan, cycle, to_plan, to_cycle
):
    member.subscribe(plan, cycle)
    member.advance(9.3)  # into the period: the unused part is an odd amount
    before = invoices(member)
    page = open_switch(member, to_plan, to_cycle)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    amount = cents(shown(html, "switch-amount"))
    assert "Pay $" in shown(html, "switch-summary") or "Pay $" in html
    assert "from today" in html
    # Showing the price changed nothing: no invoice, same plan.
    assert invoices(member) == before
    assert plan_row(app)[:2] == (plan, cycle)

    confirmed = member.client.post("/billing/switch", data=form_of(html))
    assert confirmed.status_code == 303, confirmed.get_data(as_text=True)[:1000]
    latest = get_gateway().retrieve_invoice(member.live().latest_invoice)
    assert latest.billing_reason == "subscription_update"
    assert latest.status == "paid"
    assert latest.amount_paid == amount > 0  # to the cent
    assert len(invoices(member)) == len(before) + 1
    assert plan_row(app) == (to_plan, to_cycle, None, None)
    account = member.client.get("/account").get_data(as_text=True)
    assert "Your plan is now" in account


@pytest.mark.parametrize(("plan", "cycle", "to_plan", "to_cycle"), DOWNGRADES)
def test_a_downgrade_charges_nothing_now_and_the_shown_price_at_the_date(
    app, member, plan, cycle, to_plan, to_cycle
):
    member.subscribe(plan, cycle)
    member.advance(3)
    before = invoices(member)
    html = open_switch(member, to_plan, to_cycle).get_data(as_text=True)
    assert cents(shown(html, "switch-amount")) == 0
    renewal = cents(shown(html, "switch-renewal").split(" per ")[0])
    assert "no charge now" in shown(html, "switch-summary")
    period_end = member.live()["items"]["data"][0].current_period_end

    confirmed = member.client.post("/billing/switch", data=form_of(html))
    assert confirmed.status_code == 303, confirmed.get_data(as_text=True)[:1000]
    assert invoices(member) == before  # no charge now
    assert plan_row(app) == (plan, cycle, to_plan, to_cycle)
    account = member.client.get("/account").get_data(as_text=True)
    assert 'data-testid="pending-change"' in account

    member.advance((period_end - _now(member)) / 86400 + 0.01)
    renewed = [i for i in invoices(member) if i.id not in {b.id for b in before}]
    assert [i.billing_reason for i in renewed] == ["subscription_cycle"]
    assert renewed[0].amount_paid == renewal  # to the cent
    assert plan_row(app) == (to_plan, to_cycle, None, None)


def _now(member: Member) -> int:
    with get_gateway().sandbox_instance.store() as store:
        return store.now()


def test_a_second_submit_or_the_back_button_applies_nothing_more(app, member):
    member.subscribe("starter", "monthly")
    member.advance(2)
    html = open_switch(member, "agency", "monthly").get_data(as_text=True)
    first = member.client.post("/billing/switch", data=form_of(html))
    assert first.status_code == 303
    count = len(invoices(member))
    again = member.client.post("/billing/switch", data=form_of(html))
    assert again.status_code == 303
    assert "You are on this plan" in member.client.get("/account").get_data(as_text=True)
    back = open_switch(member, "agency", "monthly")
    assert back.status_code == 303
    assert len(invoices(member)) == count


def test_a_downgrade_confirmed_twice_is_scheduled_once(app, member):
    member.subscribe("business", "monthly")
    html = open_switch(member, "starter", "monthly").get_data(as_text=True)
    assert member.client.post("/billing/switch", data=form_of(html)).status_code == 303
    assert member.client.post("/billing/switch", data=form_of(html)).status_code == 303
    schedules = get_gateway().client.v1.subscription_schedules.list(
        params={"customer": member.customer_id()}
    )
    assert len(schedules.data) == 1
    assert len(schedules.data[0].phases) == 2


def test_an_old_page_or_another_amount_shows_the_new_terms_and_charges_nothing(app, member):
    member.subscribe("starter", "monthly")
    html = open_switch(member, "business", "monthly").get_data(as_text=True)
    count = len(invoices(member))
    tampered = {**form_of(html), "amount": "1"}
    refused = member.client.post("/billing/switch", data=tampered)
    assert refused.status_code == 409
    assert len(invoices(member)) == count

    member.advance(1)  # the page stayed open for a day
    stale = member.client.post("/billing/switch", data=form_of(html))
    assert stale.status_code == 409
    fresh = stale.get_data(as_text=True)
    assert "Please check it again" in fresh
    assert len(invoices(member)) == count
    assert plan_row(app)[:2] == ("starter", "monthly")
    amount = cents(shown(fresh, "switch-amount"))
    assert amount > cents(shown(html, "switch-amount"))  # a day less of Starter to credit
    done = member.client.post("/billing/switch", data=form_of(fresh))
    assert done.status_code == 303
    assert get_gateway().retrieve_invoice(member.live().latest_invoice).amount_paid == amount


@pytest.mark.parametrize(
    ("query", "status", "says"),
    [
        ("plan=platinum&cycle=monthly", 404, "sell that plan"),
        ("plan=business&cycle=weekly", 404, "sell that plan"),
        ("plan=&cycle=", 404, "sell that plan"),
        ("plan=starter&cycle=monthly", 303, ""),  # the plan they are on
    ],
)
def test_bad_input_gets_a_clear_page(app, member, query, status, says):
    member.subscribe("starter", "monthly")
    page = member.client.get(f"/billing/switch?{query}")
    assert page.status_code == status
    assert says in page.get_data(as_text=True)


def test_the_same_plan_no_plan_and_a_past_due_plan_are_refused_clearly(app, member):
    no_plan = open_switch(member, "business", "monthly")
    assert no_plan.status_code == 409
    assert "no plan to switch from" in no_plan.get_data(as_text=True)

    member.subscribe("starter", "monthly", card="fails_at_renewal")
    same = open_switch(member, "starter", "monthly")
    assert same.status_code == 303

    member.advance(31)  # the renewal fails: past due
    assert plan_row(app)[:2] == ("starter", "monthly")
    count = len(invoices(member))
    refused = open_switch(member, "business", "monthly")
    assert refused.status_code == 409
    assert "Your last payment did not go through" in refused.get_data(as_text=True)
    token_page = member.client.get("/account").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', token_page).group(1)
    form = {"csrf_token": token, "plan": "business", "cycle": "monthly", "amount": "0"}
    posted = member.client.post("/billing/switch", data=form)
    assert posted.status_code == 409
    assert len(invoices(member)) == count


def test_confirming_needs_a_csrf_token(app, member):
    member.subscribe("starter", "monthly")
    html = open_switch(member, "business", "monthly").get_data(as_text=True)
    form = {k: v for k, v in form_of(html).items() if k != "csrf_token"}
    assert member.client.post("/billing/switch", data=form).status_code == 400
    assert plan_row(app)[:2] == ("starter", "monthly")


def test_the_switch_page_needs_a_login(app, client):
    anonymous = client.get("/billing/switch?plan=business&cycle=monthly")
    assert anonymous.status_code in (302, 303)
    assert "/login" in anonymous.headers["Location"]


def test_a_declined_card_changes_nothing_and_says_so(app, member):
    member.subscribe("starter", "monthly", card="fails_at_renewal")  # pays now, fails later
    html = open_switch(member, "business", "monthly").get_data(as_text=True)
    declined = member.client.post("/billing/switch", data=form_of(html))
    assert declined.status_code == 402
    assert "Nothing changed" in declined.get_data(as_text=True)
    assert plan_row(app) == ("starter", "monthly", None, None)
    assert member.live()["items"]["data"][0].price.lookup_key == "starter_monthly"
    assert member.balance() == 1000
