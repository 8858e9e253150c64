"""The pricing page: plans, cycles, money, and the call to action."""

import pytest


def test_pricing_lists_four_plans_in_order(client):
    html = client.get("/pricing").get_data(as_text=True)
    positions = [
        html.index(f'id="plan-{plan}"')
        for plan in ("starter", "professional", "business", "agency")
    ]
    assert positions == sorted(positions)
    for text in ("Professional", "$12.99", "3,000", "$4.99", "$39.99", "$99.99", "30,000"):
        assert text in html


def test_root_shows_pricing(client):
    response = client.get("/")
    assert response.status_code == 200
    assert "$12.99" in response.get_data(as_text=True)


def test_yearly_shows_total_monthly_equivalent_and_saving(client):
    html = client.get("/pricing?cycle=yearly").get_data(as_text=True)
    assert "$129.90" in html
    # 12990 / 12 = 1082.5, rounded half-up, and said to be approximate.
    assert "about $10.83 a month" in html
    assert "save $25.98" in html  # 12 x 12.99 - 129.90


def test_the_starter_yearly_price_a_month_is_rounded_half_up(client):
    html = client.get("/pricing?cycle=yearly").get_data(as_text=True)
    # $49.90 a year: 4.158…, not the $4.15 that rounding down said.
    assert "about $4.16 a month" in html and "$4.15" not in html


@pytest.mark.parametrize("cycle", ["bogus", "", "YEARLY", "monthly%00", "<script>"])
def test_unknown_cycle_falls_back_to_monthly(client, cycle):
    response = client.get("/pricing", query_string={"cycle": cycle})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "$12.99" in html and "$129.90" not in html


def test_cycle_switch_is_plain_links_that_keep_the_cycle(client):
    html = client.get("/pricing?cycle=yearly").get_data(as_text=True)
    assert 'href="/pricing?cycle=monthly"' in html
    assert 'aria-current="page"' in html
    # The call to action carries the chosen cycle on to sign-up.
    assert "/signup?plan=professional&amp;cycle=yearly" in html


def test_most_popular_badge_is_on_professional_only(client):
    html = client.get("/pricing").get_data(as_text=True)
    assert html.count("Most popular") == 1
    card = html[html.index('id="plan-professional"') : html.index('id="plan-business"')]
    assert "Most popular" in card


def test_page_has_one_h1_and_landmarks(client):
    html = client.get("/pricing").get_data(as_text=True)
    assert html.count("<h1") == 1
    for landmark in (
        "<header",
        "<main",
        "<footer",
        '<nav aria-label="Main"',
        '<nav class="cycle-switch" aria-label="Billing cycle"',
    ):
        assert landmark in html


def test_page_loads_nothing_from_other_origins(client):
    html = client.get("/pricing").get_data(as_text=True)
    assert "http://" not in html.replace("http://localhost", "") and "https://" not in html


def test_cached_member_pages_carry_each_visitors_own_plan_and_csrf_token(app):
    from tests.billing_helpers import subscribe
    from tests.conftest import AuthActions, create_user, csrf_token

    create_user(app, email="a@example.com")
    create_user(app, email="b@example.com")
    subscriber, browser = app.test_client(), app.test_client()
    AuthActions(app, subscriber).login("a@example.com")
    AuthActions(app, browser).login("b@example.com")
    subscribe(subscriber, "business", "monthly")
    for _ in range(2):  # the second round is served from the cache
        assert "Current plan" in subscriber.get("/pricing").get_data(as_text=True)
        html = browser.get("/pricing").get_data(as_text=True)
        assert "Current plan" not in html and "csrf-placeholder" not in html
    # The stamped token is the visitor's own: their checkout form posts.
    token = csrf_token(browser, "/pricing")
    response = browser.post(
        "/checkout", data={"plan": "starter", "cycle": "monthly", "csrf_token": token}
    )
    assert response.status_code == 303
