"""What Stripe does when money moves: paying a checkout, changing or cancelling a subscription,
renewing it when the clock passes its period end. Each emits the events Stripe emits."""

from __future__ import annotations

import copy
from typing import Any

from webapp.sandbox import objects
from webapp.sandbox.store import Store, diff, new_id
from webapp.sandbox.wire import StripeAPIError

# Stripe's test card numbers and what they do at checkout.
DECLINES = {
    "4000000000000002": ("card_declined", "generic_decline", "Your card was declined."),
    "4000000000009995": (
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
}


class CardError(StripeAPIError):
    def __init__(self, message: str, code: str, decline_code: str | None = None) -> None:
        super().__init__(
            402, message, type="card_error", code=code, decline_code=decline_code, param=None
        )


def normalise_card_number(number: str) -> str:
    return "".join(ch for ch in number if ch.isdigit())


def _luhn_ok(number: str) -> bool:
    digits = [int(ch) for ch in reversed(number)]
    total = sum(
        d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(digits)
    )
    return total % 10 == 0


def check_card(number: str, exp_month: int, exp_year: int, now_year: int, now_month: int) -> None:
    """Raise CardError for the numbers Stripe declines and for malformed cards."""
    if not (13 <= len(number) <= 19) or not _luhn_ok(number):
        raise CardError("Your card number is invalid.", "invalid_number")
    if not 1 <= exp_month <= 12:
        raise CardError("Your card's expiration month is invalid.", "invalid_expiry_month")
    if (exp_year, exp_month) < (now_year, now_month):
        raise CardError("Your card has expired.", "expired_card")
    if number in DECLINES:
        code, decline_code, message = DECLINES[number]
        raise CardError(message, code, decline_code)


# --- checkout --------------------------------------------------------------------------------


def session_price(store: Store, session: dict[str, Any]) -> dict[str, Any]:
    return store.get("price", session["_line_items"][0]["price"])


def pay_checkout_session(
    store: Store, session_id: str, *, card_number: str, exp_month: int, exp_year: int
) -> dict[str, Any]:
    """Pay an open subscription-mode session: customer, subscription, paid invoice, events."""
    session = store.get("checkout.session", session_id, for_update=True)
    if session["status"] != "open":
        raise StripeAPIError(400, "This Checkout Session is no longer open.", code="session_closed")
    from datetime import UTC, datetime

    today = datetime.fromtimestamp(store.now(), UTC)
    check_card(card_number, exp_month, exp_year, today.year, today.month)

    customer = _session_customer(store, session)
    pm = attach_card(store, customer, card_number, exp_month, exp_year)
    price = session_price(store, session)
    now = store.now()
    sub = objects.subscription(
        now,
        customer_id=customer["id"],
        price_obj=price,
        metadata=dict(session.get("_subscription_metadata") or {}),
        payment_method_id=pm["id"],
    )
    store.save(sub)
    store.emit("customer.subscription.created", sub)
    item = sub["items"]["data"][0]
    line = _line(store, "", sub, item, price, price["unit_amount"], _describe(price), now, None)
    invoice = create_invoice(store, customer, sub, "subscription_create", [line], now, now)
    charge_invoice(store, invoice, customer, pm)

    before = copy.deepcopy(sub)
    sub["latest_invoice"] = invoice["id"]
    store.save(sub)
    store.emit("customer.subscription.updated", sub, diff(before, sub))

    session.update(
        status="complete",
        payment_status="paid",
        customer=customer["id"],
        subscription=sub["id"],
        invoice=invoice["id"],
        customer_details=objects.customer_details(customer["email"]),
        url=None,
    )
    store.save(session)
    store.emit("checkout.session.completed", session)
    return session


def _session_customer(store: Store, session: dict[str, Any]) -> dict[str, Any]:
    if session.get("customer"):
        return store.get("customer", session["customer"])
    customer = objects.customer(store.now(), email=session.get("customer_email"))
    store.save(customer)
    store.emit("customer.created", customer)
    return customer


def attach_card(
    store: Store, customer: dict[str, Any], card_number: str, exp_month: int, exp_year: int
) -> dict[str, Any]:
    """A new card payment method, attached and made the customer's default."""
    pm = objects.payment_method(
        store.now(),
        customer_id=customer["id"],
        card_number=card_number,
        exp_month=exp_month,
        exp_year=exp_year,
    )
    store.save(pm)
    store.emit("payment_method.attached", pm)
    before = copy.deepcopy(customer)
    customer["invoice_settings"]["default_payment_method"] = pm["id"]
    store.save(customer)
    store.emit("customer.updated", customer, diff(before, customer))
    return pm


def expire_checkout_session(store: Store, session_id: str) -> dict[str, Any]:
    session = store.get("checkout.session", session_id, for_update=True)
    if session["status"] != "open":
        raise StripeAPIError(
            400,
            f'Only Checkout Sessions with a status in ["open"] can be expired. This Checkout '
            f'Session has a status of "{session["status"]}".',
            code="checkout_session_not_open",
        )
    session.update(status="expired", url=None)
    store.save(session)
    store.emit("checkout.session.expired", session)
    return session


def expire_overdue_sessions(store: Store) -> None:
    """Open sessions past `expires_at` expire, as Stripe expires them."""
    for session in store.query("checkout.session"):
        if session["status"] == "open" and session["expires_at"] <= store.now():
            expire_checkout_session(store, session["id"])


# --- invoices -------------------------------------------------------------------------------


def _describe(price: dict[str, Any]) -> str:
    interval = price["recurring"]["interval"]
    amount = price["unit_amount"] / 100
    return f"1 x {price['nickname'] or price['product']} (at ${amount:.2f} / {interval})"


def _line(store, invoice_id, sub, item, price, amount, description, start, end, proration=False):
    return objects.invoice_line(
        invoice_id=invoice_id,
        amount=amount,
        currency=price["currency"],
        description=description,
        price_obj=price,
        subscription_id=sub["id"],
        subscription_item_id=item["id"],
        start=start,
        end=end if end is not None else item["current_period_end"],
        proration=proration,
    )


def create_invoice(store, customer, sub, billing_reason, lines, period_start, period_end):
    """A finalized invoice for `lines`, with the customer's credit balance applied."""
    invoice_id = new_id("in_")
    for line in lines:
        line["invoice"] = invoice_id
    invoice = objects.invoice(
        store.now(),
        invoice_id=invoice_id,
        customer_obj=customer,
        subscription_obj=sub,
        billing_reason=billing_reason,
        lines=lines,
        period_start=period_start,
        period_end=period_end,
    )
    # A negative balance is credit the customer holds (e.g. from a downgrade).
    applied = min(invoice["total"], -customer["balance"]) if customer["balance"] < 0 else 0
    applied = max(applied, 0)
    ending = customer["balance"] + applied + min(invoice["total"], 0)
    invoice["amount_due"] = invoice["amount_remaining"] = max(invoice["total"] - applied, 0)
    invoice["ending_balance"] = ending
    customer["balance"] = ending
    customer["next_invoice_sequence"] += 1
    store.save(customer)
    store.save(invoice)
    store.emit("invoice.created", invoice)
    invoice["status"] = "open"
    invoice["status_transitions"]["finalized_at"] = store.now()
    store.save(invoice)
    store.emit("invoice.finalized", invoice)
    return invoice


def charge_invoice(store, invoice, customer, pm, *, off_session: bool = False) -> bool:
    """Try to pay an open invoice with `pm`; emits invoice.paid or invoice.payment_failed."""
    invoice["attempted"] = True
    invoice["attempt_count"] += 1
    if pm is not None and off_session and pm.get("_renewal_fails"):
        invoice["next_payment_attempt"] = store.now() + 3 * 86400
        store.save(invoice)
        store.emit("invoice.payment_failed", invoice)
        return False
    now = store.now()
    invoice.update(
        status="paid",
        amount_paid=invoice["amount_due"],
        amount_remaining=0,
        next_payment_attempt=None,
        default_payment_method=None,
    )
    invoice["status_transitions"]["paid_at"] = now
    store.save(invoice)
    store.emit("invoice.paid", invoice)
    store.emit("invoice.payment_succeeded", invoice)
    return True


def pay_open_invoices(store: Store, customer: dict[str, Any], pm: dict[str, Any]) -> None:
    """A new card settles the customer's open invoices; past_due subscriptions recover."""
    for invoice in store.query("invoice", customer=customer["id"]):
        if invoice["status"] != "open":
            continue
        if charge_invoice(store, invoice, customer, pm):
            sub_id = invoice["parent"]["subscription_details"]["subscription"]
            sub = store.get("subscription", sub_id)
            if sub["status"] == "past_due":
                before = copy.deepcopy(sub)
                sub["status"] = "active"
                store.save(sub)
                store.emit("customer.subscription.updated", sub, diff(before, sub))


# --- subscription changes -------------------------------------------------------------------


def change_price(
    store: Store,
    sub: dict[str, Any],
    new_price: dict[str, Any],
    proration_behavior: str,
    *,
    off_session: bool = True,
    payment_behavior: str = "allow_incomplete",
) -> dict[str, Any]:
    """Swap the subscription's price, prorating the rest of the period like Stripe does.

    A change of interval (month ↔ year) restarts the period now and bills at once; otherwise
    the period stays and the difference is invoiced now (`always_invoice`), left for the next
    invoice (`create_prorations`), or dropped (`none`).
    """
    item = sub["items"]["data"][0]
    old_price = item["price"]
    if old_price["id"] == new_price["id"]:
        return sub
    now = store.now()
    start, end = item["current_period_start"], item["current_period_end"]
    remaining = max(end - now, 0) / max(end - start, 1)
    credit = -round(old_price["unit_amount"] * remaining)
    interval_changes = old_price["recurring"] != new_price["recurring"] and (
        old_price["recurring"]["interval"] != new_price["recurring"]["interval"]
    )
    item["price"], item["plan"] = new_price, objects.plan_from_price(new_price)
    lines = []
    if interval_changes:
        interval = new_price["recurring"]["interval"]
        new_end = objects.add_interval(now, interval, new_price["recurring"]["interval_count"])
        item["current_period_start"], item["current_period_end"] = now, new_end
        sub["billing_cycle_anchor"] = now
        if proration_behavior != "none":
            lines.append(("Unused time on " + _name(old_price), credit, old_price, now, end, True))
        lines.append(
            (_describe(new_price), new_price["unit_amount"], new_price, now, new_end, False)
        )
        proration_behavior = "always_invoice"  # a new cycle is always billed at once
    elif proration_behavior != "none":
        charge = round(new_price["unit_amount"] * remaining)
        lines.append(("Unused time on " + _name(old_price), credit, old_price, now, end, True))
        lines.append(("Remaining time on " + _name(new_price), charge, new_price, now, end, True))
    if proration_behavior == "create_prorations":
        sub["_pending_lines"].extend(
            {"description": d, "amount": a, "price": p["id"], "start": s, "end": e}
            for d, a, p, s, e, _ in lines
        )
        return sub
    if lines:
        customer = store.get("customer", sub["customer"])
        invoice_lines = [
            _line(store, "", sub, item, p, a, d, s, e, proration)
            for d, a, p, s, e, proration in lines
        ]
        invoice = create_invoice(
            store, customer, sub, "subscription_update", invoice_lines, now, now
        )
        pm = store.find(sub["default_payment_method"] or "")
        if not charge_invoice(store, invoice, customer, pm, off_session=off_session):
            if payment_behavior == "error_if_incomplete":
                # Stripe refuses the whole update (nothing is saved) with the card's error.
                raise CardError("Your card was declined.", "card_declined", "generic_decline")
            sub["status"] = "past_due"
        sub["latest_invoice"] = invoice["id"]
    return sub


def _name(price: dict[str, Any]) -> str:
    return price["nickname"] or price["product"]


def set_cancel_at_period_end(store: Store, sub: dict[str, Any], cancel: bool) -> dict[str, Any]:
    if sub["status"] == "canceled":
        raise StripeAPIError(
            400,
            "A canceled subscription can only update its cancellation_details and metadata.",
            param="cancel_at_period_end",
        )
    sub["cancel_at_period_end"] = cancel
    if cancel:
        sub["cancel_at"] = sub["items"]["data"][0]["current_period_end"]
        sub["canceled_at"] = store.now()
        sub["cancellation_details"]["reason"] = "cancellation_requested"
    else:
        sub["cancel_at"] = sub["canceled_at"] = None
        sub["cancellation_details"]["reason"] = None
    return sub


def cancel_now(store: Store, sub_id: str) -> dict[str, Any]:
    sub = store.get("subscription", sub_id, for_update=True)
    if sub["status"] == "canceled":
        raise StripeAPIError(
            400,
            f"No such subscription: '{sub_id}'; a similar object exists but is canceled.",
            code="resource_missing",
            param="id",
        )
    now = store.now()
    sub.update(status="canceled", ended_at=now, canceled_at=sub["canceled_at"] or now)
    sub["cancellation_details"]["reason"] = sub["cancellation_details"]["reason"] or (
        "cancellation_requested"
    )
    store.save(sub)
    store.emit("customer.subscription.deleted", sub)
    return sub


# --- the test clock -------------------------------------------------------------------------


def advance_clock(store: Store, seconds: int) -> int:
    """Move time on and do what Stripe would have done meanwhile; returns the new time."""
    now = store.advance_clock(seconds)
    expire_overdue_sessions(store)
    for sub in store.query("subscription"):
        while sub["status"] in ("active", "past_due", "trialing"):
            if sub["items"]["data"][0]["current_period_end"] > now:
                break
            sub = _end_period(store, sub)
    return now


def _end_period(store: Store, sub: dict[str, Any]) -> dict[str, Any]:
    item = sub["items"]["data"][0]
    period_end = item["current_period_end"]
    before = copy.deepcopy(sub)
    if sub["cancel_at_period_end"]:
        sub.update(status="canceled", ended_at=period_end)
        store.save(sub)
        store.emit("customer.subscription.deleted", sub)
        return sub
    price = item["price"]
    recurring = price["recurring"]
    new_end = objects.add_interval(period_end, recurring["interval"], recurring["interval_count"])
    item["current_period_start"], item["current_period_end"] = period_end, new_end
    customer = store.get("customer", sub["customer"])
    lines = [
        _line(
            store,
            "",
            sub,
            item,
            store.get("price", p["price"]),
            p["amount"],
            p["description"],
            p["start"],
            p["end"],
            True,
        )
        for p in sub["_pending_lines"]
    ]
    sub["_pending_lines"] = []
    lines.append(
        _line(
            store, "", sub, item, price, price["unit_amount"], _describe(price), period_end, new_end
        )
    )
    invoice = create_invoice(
        store, customer, sub, "subscription_cycle", lines, before_start(before), period_end
    )
    sub["latest_invoice"] = invoice["id"]
    pm = store.find(sub["default_payment_method"] or "")
    if not charge_invoice(store, invoice, customer, pm, off_session=True):
        sub["status"] = "past_due"
    store.save(sub)
    store.emit("customer.subscription.updated", sub, diff(before, sub))
    return sub


def before_start(sub: dict[str, Any]) -> int:
    return sub["items"]["data"][0]["current_period_start"]
