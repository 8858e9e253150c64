"""/account/credits: the whole credits ledger, paged, filtered by type, linked from the account
page's credits card."""

from __future__ import annotations

import re

import pytest

from webapp.billing.credits import add_entry
from webapp.billing.usage import UsageRequest, record_usage
from webapp.extensions import db


def fill(app, user_id: int, usages: int) -> None:
    """A plan purchase, a take-back, and `usages` generations (the newest last)."""
    with app.app_context():
        add_entry(user_id=user_id, amount=5000, grant_key="plan", description="Starter plan")
        add_entry(user_id=user_id, amount=-100, grant_key="taken", description="Refund of INV-1")
        db.session.commit()
        for n in range(usages):
            record_usage(UsageRequest(user_id, 3, f"Generation {n}", f"site-{n}", f"gen-{n}"))


def rows(html: str) -> list[str]:
    return re.findall(r'data-testid="credit-row" data-type="(\w+)"', html)


def test_the_account_card_links_to_the_full_history(app, client, auth, user_id):
    fill(app, user_id, 1)
    auth.login()
    html = client.get("/account").get_data(as_text=True)
    assert 'href="/account/credits"' in html and 'data-testid="all-credits"' in html


def test_pages_through_every_entry_newest_first(app, client, auth, user_id):
    fill(app, user_id, 45)
    auth.login()
    first = client.get("/account/credits").get_data(as_text=True)
    assert len(rows(first)) == 20 and "Page 1 of 3 (47 entries)" in first
    assert first.index("Generation 44") < first.index("Generation 25")
    third = client.get("/account/credits?page=3").get_data(as_text=True)
    assert rows(third) == ["usage"] * 5 + ["refund", "purchase"]
    assert 'rel="prev"' in third and 'rel="next"' not in third
    assert "Starter plan" in third and "site-0" in third
    assert client.get("/account/credits?page=4").status_code == 404


def test_the_type_filter_pages_too(app, client, auth, user_id):
    fill(app, user_id, 25)
    auth.login()
    usage = client.get("/account/credits?type=usage").get_data(as_text=True)
    assert rows(usage) == ["usage"] * 20 and "(25 entries)" in usage
    assert 'href="/account/credits?page=2&amp;type=usage"' in usage
    assert (
        rows(client.get("/account/credits?type=usage&page=2").get_data(as_text=True))
        == ["usage"] * 5
    )
    assert rows(client.get("/account/credits?type=refund").get_data(as_text=True)) == ["refund"]
    purchases = client.get("/account/credits?type=purchase").get_data(as_text=True)
    assert rows(purchases) == ["purchase"]
    assert 'aria-current="page" data-testid="filter-purchase"' in purchases


def test_an_empty_history(client, auth, user_id):
    auth.login()
    assert "No credit activity yet." in client.get("/account/credits").get_data(as_text=True)
    assert "No refunds yet." in client.get("/account/credits?type=refund").get_data(as_text=True)


@pytest.mark.parametrize("query", ["?page=0", "?page=x", "?type=grant", "?type=USAGE"])
def test_bad_queries_are_404(client, auth, user_id, query):
    auth.login()
    assert client.get(f"/account/credits{query}").status_code == 404


def test_logged_out_goes_to_log_in(client):
    response = client.get("/account/credits")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
