"""A member using the site as a person would: checkout, the portal, the balance; plus the clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask import Flask

from tests.conftest import AuthActions, csrf_token, sql
from webapp import billing
from webapp.stripe_gateway import get_gateway

CARDS = {
    "pays": "4242 4242 4242 4242",
    "fails_at_renewal": "4000 0000 0000 0341",
    "disputed": "4000 0000 0000 0259",
}
LIVE = ("active", "trialing", "past_due")


class Member:
    """One logged-in member of `app` (call inside the app's context)."""

    def __init__(self, app: Flask, user_id: int, email: str = "ada@example.com") -> None:
        self.app, self.user_id = app, user_id
        self.client = app.test_client()
        AuthActions(app, self.client).login(email=email)

    def subscribe(self, plan: str, cycle: str, card: str = "pays") -> str:
        """Check out and pay on the hosted page; the success page's HTML."""
        token = csrf_token(self.client, "/pricing")
        data = {"plan": plan, "cycle": cycle, "csrf_token": token}
        started = self.client.post("/checkout", data=data)
        assert started.status_code == 303, started.get_data(as_text=True)[:300]
        path = urlsplit(started.headers["Location"]).path
        card_data = {"card_number": CARDS[card], "expiry": "12 / 34", "cvc": "123"}
        paid = self.client.post(
            path, data={"csrf_token": csrf_token(self.client, path), **card_data}
        )
        assert paid.status_code == 303, paid.get_data(as_text=True)[:300]
        session_id = parse_qs(urlsplit(paid.headers["Location"]).query)["session_id"][0]
        success = self.client.get(f"/checkout/success?session_id={session_id}")
        assert success.status_code == 200
        return success.get_data(as_text=True)

    def start_trial(self, plan: str, cycle: str, card: str | None = None) -> str:
        """Check out a plan that comes with a free trial: "Start trial" with no card (the session
        must allow it) or with `card`; the success page's HTML."""
        token = csrf_token(self.client, "/pricing")
        data = {"plan": plan, "cycle": cycle, "csrf_token": token}
        started = self.client.post("/checkout", data=data)
        assert started.status_code == 303, started.get_data(as_text=True)[:300]
        path = urlsplit(started.headers["Location"]).path
        form = {"csrf_token": csrf_token(self.client, path)}
        if card is None:
            done = self.client.post(f"{path}/trial", data=form)
        else:
            card_data = {"card_number": CARDS[card], "expiry": "12 / 34", "cvc": "123"}
            done = self.client.post(path, data={**form, **card_data})
        assert done.status_code == 303, done.get_data(as_text=True)[:300]
        session_id = parse_qs(urlsplit(done.headers["Location"]).query)["session_id"][0]
        success = self.client.get(f"/checkout/success?session_id={session_id}")
        assert success.status_code == 200
        return success.get_data(as_text=True)

    def add_card(self, card: str = "pays") -> str:
        """Add a card in the portal (how a trial member keeps their plan after the trial)."""
        return self.portal("card", card_number=CARDS[card], expiry="12 / 34", cvc="123")

    def portal(self, action: str, **data: str) -> str:
        """Open the portal from the account page and post one of its forms; the page after."""
        token = csrf_token(self.client, "/account")
        opened = self.client.post("/billing/portal", data={"csrf_token": token})
        assert opened.status_code == 303, opened.get_data(as_text=True)[:300]
        path = urlsplit(opened.headers["Location"]).path
        reply = self.client.post(
            f"{path}/{action}", data={"csrf_token": csrf_token(self.client, path), **data}
        )
        assert reply.status_code in (200, 303), reply.get_data(as_text=True)[:500]
        return self.client.get(path).get_data(as_text=True)

    def switch(self, plan: str, cycle: str) -> str:
        return self.portal("switch", price=price_id(plan, cycle))

    def customer_id(self) -> str | None:
        rows = sql(self.app, "select stripe_customer_id from users where id = :id", id=self.user_id)
        return rows[0][0]

    def stripe_subscriptions(self) -> list[Any]:
        customer = self.customer_id()
        if customer is None:
            return []
        params = {"customer": customer, "status": "all"}
        return list(get_gateway().client.v1.subscriptions.list(params=params).data)

    def live(self) -> Any | None:
        live = [s for s in self.stripe_subscriptions() if s.status in LIVE]
        return live[0] if live else None

    def balance(self) -> int:
        return billing.credit_summary(self.user_id).balance

    def advance(self, days: float) -> datetime:
        """The sandbox's test clock moves on; then the hourly scheduler runs, at that time."""
        response = self.client.post("/sandbox/control/advance", json={"days": days})
        assert response.status_code == 200
        now = datetime.fromtimestamp(response.get_json()["now"], UTC)
        billing.grant_due_credits(now)
        return now


def price_id(plan: str, cycle: str) -> str:
    return get_gateway().price_for(f"{plan}_{cycle}").id
