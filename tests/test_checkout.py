"""Checkout: starting sessions, the success and cancel pages, refusals and provider faults."""

import re

import pytest

from tests.billing_helpers import VISA_DECLINED, pay, start_checkout, subscribe
from tests.conftest import create_user, csrf_token, sql
from webapp.stripe_gateway import get_gateway


@pytest.fixture
def logged_in(app, auth, user_id):
    auth.login()
    return user_id


def count(app, table: str) -> int:
    return sql(app, f"select count(*) from {table}")[0][0]


def test_checkout_redirects_to_the_sessions_hosted_page(app, client, logged_in):
    response = start_checkout(client, "professional", "yearly")
    assert response.status_code == 303
    assert re.search(r"/sandbox/checkout/cs_test_\w+$", response.headers["Location"])
    [(plan, cycle, status)] = sql(app, "select plan_id, cycle, status from checkout_sessions")
    assert (plan, cycle, status) == ("professional", "yearly", "open")
    with app.app_context():
        session_id = sql(app, "select stripe_session_id from checkout_sessions")[0][0]
        session = get_gateway().retrieve_checkout_session(session_id)
        assert session.mode == "subscription"
        assert session.client_reference_id == str(logged_in)
        assert session.metadata["plan"] == "professional"
        assert session.amount_total == 12990
        assert "{CHECKOUT_SESSION_ID}" not in session.success_url
        assert session.success_url.endswith(f"session_id={session_id}")


def test_checkout_requires_login(client):
    token = csrf_token(client, "/login")
    response = client.post(
        "/checkout", data={"plan": "starter", "cycle": "monthly", "csrf_token": token}
    )
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_checkout_requires_csrf(app, client, logged_in):
    response = client.post("/checkout", data={"plan": "starter", "cycle": "monthly"})
    assert response.status_code == 400
    assert count(app, "checkout_sessions") == 0


@pytest.mark.parametrize(("plan", "cycle"), [("gold", "monthly"), ("starter", "weekly"), ("", "")])
def test_unknown_plan_is_a_400_page_with_a_way_back(app, client, logged_in, plan, cycle):
    response = start_checkout(client, plan, cycle)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "That plan isn" in html and 'href="/pricing"' in html
    assert count(app, "checkout_sessions") == 0


def test_two_posts_make_one_open_session(app, client, logged_in):
    first = start_checkout(client)
    second = start_checkout(client)
    assert first.headers["Location"] == second.headers["Location"]
    assert count(app, "checkout_sessions") == 1
    assert sql(app, "select count(*) from users where stripe_customer_id is not null") == [(1,)]


def test_another_plan_expires_the_open_session(app, client, logged_in):
    first = start_checkout(client, "starter")
    second = start_checkout(client, "business")
    assert first.headers["Location"] != second.headers["Location"]
    statuses = sql(app, "select plan_id, status from checkout_sessions order by id")
    assert statuses == [("starter", "expired"), ("business", "open")]
    with app.app_context():
        session_id = first.headers["Location"].rsplit("/", 1)[1]
        assert get_gateway().retrieve_checkout_session(session_id).status == "expired"
    # The customer is created once and reused.
    assert sql(app, "select count(distinct stripe_customer_id) from users") == [(1,)]


def test_paying_fulfils_and_the_success_page_says_so(app, client, logged_in):
    session_id = subscribe(client, "professional", "monthly")
    response = client.get(f"/checkout/success?session_id={session_id}")
    assert response.status_code == 200
    assert "You're on Professional — 3,000 credits added" in response.get_data(as_text=True)
    [(plan, cycle, status)] = sql(app, "select plan_id, cycle, status from subscriptions")
    assert (plan, cycle, status) == ("professional", "monthly", "active")
    assert sql(app, "select sum(amount) from credit_entries") == [(3000,)]
    # Reloading the page fulfils nothing twice.
    client.get(f"/checkout/success?session_id={session_id}")
    assert sql(app, "select count(*) from credit_entries") == [(1,)]


def test_success_page_is_only_for_the_owner(app, client, auth, logged_in):
    session_id = subscribe(client)
    auth.logout()
    create_user(app, email="eve@example.com")
    auth.login("eve@example.com")
    assert client.get(f"/checkout/success?session_id={session_id}").status_code == 404
    assert client.get("/checkout/success?session_id=cs_test_nope").status_code == 404
    assert client.get("/checkout/success").status_code == 404


def test_success_page_never_logs_anyone_in(app, client, auth, logged_in):
    session_id = subscribe(client)
    auth.logout()
    response = client.get(f"/checkout/success?session_id={session_id}")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_unpaid_session_shows_a_self_refreshing_page(app, client, logged_in):
    started = start_checkout(client)
    session_id = started.headers["Location"].rsplit("/", 1)[1]
    html = client.get(f"/checkout/success?session_id={session_id}").get_data(as_text=True)
    assert 'http-equiv="refresh"' in html and "refresh=1" in html
    html = client.get(f"/checkout/success?session_id={session_id}&refresh=15").get_data(
        as_text=True
    )
    assert 'http-equiv="refresh"' not in html  # bounded
    assert "still processing" in html


def test_declined_card_shows_the_decline_and_subscribes_nobody(app, client, logged_in):
    started = start_checkout(client)
    response = pay(client, started.headers["Location"], VISA_DECLINED)
    assert response.status_code in (200, 402)
    assert "declined" in response.get_data(as_text=True).lower()
    assert count(app, "subscriptions") == 0
    assert count(app, "credit_entries") == 0


def test_subscribed_user_is_refused_and_sent_to_the_account(app, client, logged_in):
    subscribe(client)
    before = count(app, "checkout_sessions")
    response = start_checkout(client, "agency")
    assert response.status_code == 303 and response.headers["Location"] == "/account"
    assert count(app, "checkout_sessions") == before
    assert "Use Manage billing" in client.get("/account").get_data(as_text=True)


def test_cancel_page_leads_back_with_the_plan_highlighted(client):
    html = client.get("/checkout/cancel?plan=business&cycle=yearly").get_data(as_text=True)
    assert "nothing was charged" in html
    assert "/pricing?plan=business&amp;cycle=yearly#plan-business" in html
    pricing = client.get("/pricing?plan=business&cycle=yearly").get_data(as_text=True)
    assert 'class="plan-card is-selected"' in pricing or "is-selected" in pricing


@pytest.mark.parametrize("mode", ["500", "timeout"])
def test_provider_fault_is_a_friendly_page_and_nothing_half_written(app, client, logged_in, mode):
    sandbox = app.extensions["stripe_sandbox"]
    sandbox.faults.set_api(10, mode, 0.01)
    response = start_checkout(client)
    assert response.status_code == 502
    assert "Payments are unavailable right now" in response.get_data(as_text=True)
    assert count(app, "checkout_sessions") == 0
    assert sql(app, "select stripe_customer_id from users") == [(None,)]
    sandbox.faults.clear()
    retry = start_checkout(client)
    assert retry.status_code == 303
    assert count(app, "checkout_sessions") == 1


def test_anonymous_choice_goes_through_signup_on_to_checkout(app, client, auth):
    response = auth.signup(plan="business", cycle="yearly")
    assert response.headers["Location"] == "/signup/done"
    # One button on: sign-up answers alike for new and taken addresses, and a GET never pays.
    token = csrf_token(client, "/signup/done")
    response = client.post(
        "/checkout", data={"plan": "business", "cycle": "yearly", "csrf_token": token}
    )
    assert response.status_code == 303
    assert "/sandbox/checkout/cs_test_" in response.headers["Location"]
    assert sql(app, "select plan_id, cycle from checkout_sessions") == [("business", "yearly")]


@pytest.mark.parametrize("page", ["/signup", "/login"])
def test_a_logged_in_get_with_a_plan_asks_before_starting_a_checkout(app, client, logged_in, page):
    # A cross-site link (or <img src>) is a GET: it must not create or expire any session.
    response = client.get(f"{page}?plan=business&cycle=yearly")
    assert response.status_code == 200
    assert count(app, "checkout_sessions") == 0
    html = response.get_data(as_text=True)
    assert "Business, yearly" in html
    form = html[html.index('<form method="post" action="/checkout"') :]
    form = form[: form.index("</form>")]
    assert 'name="plan" type="hidden" value="business"' in form
    assert 'name="cycle" type="hidden" value="yearly"' in form
    assert "Continue to checkout" in form
    # The button (a POST with the member's CSRF token) goes on to Stripe Checkout.
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form).group(1)
    response = client.post(
        "/checkout", data={"plan": "business", "cycle": "yearly", "csrf_token": token}
    )
    assert response.status_code == 303
    assert "/sandbox/checkout/cs_test_" in response.headers["Location"]


def test_a_logged_in_get_with_a_plan_leaves_the_open_checkout_alone(app, client, logged_in):
    start_checkout(client, "starter", "monthly")
    client.get("/signup?plan=agency&cycle=monthly")
    client.get("/login?plan=agency&cycle=yearly")
    assert sql(app, "select plan_id, status from checkout_sessions") == [("starter", "open")]


def test_a_subscriber_following_a_plan_link_is_sent_to_their_account(app, client, logged_in):
    subscribe(client, "professional", "monthly")
    sessions_before = count(app, "checkout_sessions")
    response = client.get("/signup?plan=business&cycle=monthly")
    assert response.status_code == 303 and response.headers["Location"] == "/account"
    assert "You already have a plan" in client.get("/account").get_data(as_text=True)
    assert count(app, "checkout_sessions") == sessions_before


def test_a_logged_in_get_without_a_plan_goes_on_as_before(client, logged_in):
    assert client.get("/signup").headers["Location"] == "/account"
    assert client.get("/login?next=/pricing").headers["Location"] == "/pricing"
    assert client.get("/login?plan=gold").headers["Location"] == "/account"


def test_pricing_knows_the_current_plan(app, client, logged_in):
    subscribe(client, "professional", "monthly")
    html = client.get("/pricing").get_data(as_text=True)
    card = html[html.index('id="plan-professional"') : html.index('id="plan-business"')]
    assert "Current plan" in card
    other = html[html.index('id="plan-business"') : html.index('id="plan-agency"')]
    assert ">Switch<" in other


def test_portal_without_billing_account_explains(app, client, logged_in):
    token = csrf_token(client, "/account")
    response = client.post("/billing/portal", data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"] == "/account"
    assert "no billing account yet" in client.get("/account").get_data(as_text=True)


def test_portal_redirects_to_the_customers_portal(app, client, logged_in):
    subscribe(client)
    token = csrf_token(client, "/account")
    response = client.post("/billing/portal", data={"csrf_token": token})
    assert response.status_code == 303
    assert "/sandbox/portal/bps_" in response.headers["Location"]


def test_account_shows_plan_credits_and_renewal(app, client, logged_in):
    subscribe(client, "professional", "yearly")
    html = client.get("/account").get_data(as_text=True)
    assert 'data-testid="plan-name">Professional<' in html
    assert "Renews on" in html
    assert 'data-testid="credit-balance">3,000<' in html
