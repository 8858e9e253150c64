"""Paying a hosted Checkout Session (subscription or payment mode); expiring unpaid ones."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from webapp.sandbox import objects
from webapp.sandbox.operations import trials
from webapp.sandbox.operations.cards import (
    AUTHENTICATION_REQUIRED,
    CardError,
    attach_card,
    card_failure,
    check_card,
    needs_authentication,
)
from webapp.sandbox.operations.discounts import (
    RedemptionError,
    check_redemption,
    discount_amount,
    find_promotion_code,
    redeem,
)
from webapp.sandbox.operations.invoicing import (
    create_invoice,
    finalize_invoice,
    period_line,
    product_name,
)
from webapp.sandbox.operations.payments import pay_invoice
from webapp.sandbox.operations.tax import (
    check_address,
    check_tax_id,
    save_on_customer,
    session_address,
    session_collects_address,
    update_session_totals,
)
from webapp.sandbox.store import Store, diff, new_id
from webapp.sandbox.wire import StripeAPIError


def session_price(store: Store, session: dict[str, Any]) -> dict[str, Any]:
    return store.get("price", session["_line_items"][0]["price"])


def open_session(store: Store, session_id: str) -> dict[str, Any]:
    """The session, locked, if it can still be paid."""
    session = store.get("checkout.session", session_id, for_update=True)
    if session["status"] != "open":
        raise StripeAPIError(400, "This Checkout Session is no longer open.", code="session_closed")
    return session


class TermsNotAccepted(Exception):
    """The session requires the terms-of-service checkbox and the buyer did not tick it."""

    message = "Please agree to the Terms of Service to continue."


def requires_terms(session: dict[str, Any]) -> bool:
    """`consent_collection.terms_of_service = "required"`: Checkout shows a checkbox the buyer
    must tick before paying (SDK params/checkout/_session_create_params.py)."""
    return (session.get("consent_collection") or {}).get("terms_of_service") == "required"


def check_terms(session: dict[str, Any], terms_accepted: bool) -> None:
    if requires_terms(session) and not terms_accepted:
        raise TermsNotAccepted(TermsNotAccepted.message)


def card_optional(session: dict[str, Any]) -> bool:
    """Checkout may complete without a card: `payment_method_collection=if_required` and
    nothing due today (a free trial), as docs.stripe.com/payments/checkout/free-trials says."""
    return session.get("payment_method_collection") == "if_required" and bool(
        session.get("_trial_period_days")
    )


def pay_checkout_session(
    store: Store,
    session_id: str,
    *,
    card_number: str | None,
    exp_month: int = 0,
    exp_year: int = 0,
    authenticated: bool = False,
    terms_accepted: bool = False,
) -> dict[str, Any]:
    """Pay (or, with a trial, start) an open subscription-mode session: customer, subscription,
    paid invoice ($0 for a trial), events. `card_number` None: no card, which only a card-less
    trial allows (`card_optional`).

    A card that needs 3-D Secure pays only after the customer completed the challenge
    (`authenticated`); the hosted page asks for it before calling this. A session that
    requires consent to the terms pays only once the buyer ticked the box (`terms_accepted`),
    and then carries `consent.terms_of_service = "accepted"`, as Stripe's does."""
    session = open_session(store, session_id)
    check_terms(session, terms_accepted)
    if session_collects_address(session) and session_address(store, session) is None:
        raise StripeAPIError(400, "Enter your billing address.", param="address")
    today = datetime.fromtimestamp(store.now(), UTC)
    if card_number is None:
        if not card_optional(session):
            raise CardError("Enter your card details.", "incomplete_number", None)
    else:
        check_card(card_number, exp_month, exp_year, today.year, today.month)
        if needs_authentication(card_number) and not authenticated:
            raise CardError(AUTHENTICATION_REQUIRED[2], *AUTHENTICATION_REQUIRED[:2])

    new_customer = not session.get("customer")
    customer = _session_customer(store, session)
    # The address and tax id typed here, saved on the customer first: its invoices are taxed
    # where it is (operations.tax).
    save_on_customer(store, session, customer, new=new_customer)
    pm = (
        attach_card(store, customer, card_number, exp_month, exp_year)
        if card_number is not None
        else None
    )
    if session["mode"] == "payment":
        if pm is None:  # a card is optional only for a subscription's trial
            raise CardError("Enter your card details.", "incomplete_number", None)
        return _pay_one_time(store, session, customer, pm, authenticated=authenticated)
    price = session_price(store, session)
    now = store.now()
    sub = objects.subscription(
        now,
        customer_id=customer["id"],
        price_obj=price,
        quantity=session["_line_items"][0]["quantity"],
        metadata=dict(session.get("_subscription_metadata") or {}),
        payment_method_id=pm["id"] if pm else None,
        # Flexible unless the session asked for classic: the default for Checkout-created
        # subscriptions since 2025-09-30.clover (docs.stripe.com/changelog/clover/2025-09-30/
        # billing-mode-default-flexible).
        mode=session.get("_billing_mode") or "flexible",
        proration_discounts=session.get("_proration_discounts"),
    )
    # A session with automatic tax makes a subscription that keeps taxing its invoices.
    sub["automatic_tax"]["enabled"] = bool((session.get("automatic_tax") or {}).get("enabled"))
    if session.get("_promotion_code"):
        # Checked again as the payment is made: the code may have run out meanwhile.
        promo, coupon = session_promotion(store, session, customer_id=customer["id"])
        discount = redeem(
            store,
            promo,
            coupon,
            customer_id=customer["id"],
            subscription_id=sub["id"],
            checkout_session_id=session["id"],
        )
        sub["discounts"] = [discount["id"]]
    trial_days = session.get("_trial_period_days")
    if trial_days:
        trials.start_trial(sub, now, trial_days, session["_trial_missing_payment_method"])
    store.save(sub)
    store.emit("customer.subscription.created", sub)
    item = sub["items"]["data"][0]
    if trial_days:
        line = trials.trial_line(store, sub, price)
        if sub["trial_end"] - now < trials.TRIAL_WILL_END_SECONDS:
            trials.send_trial_will_end(store, sub)
    else:
        line = period_line(store, item, price, now, item["current_period_end"])
    invoice = create_invoice(store, customer, sub, "subscription_create", [line], now, now)
    # The customer is on the page: an on-session payment.
    pay_invoice(store, invoice, pm, off_session=False, authenticated=authenticated)

    before = copy.deepcopy(sub)
    sub["latest_invoice"] = invoice["id"]
    store.save(sub)
    store.emit("customer.subscription.updated", sub, diff(before, sub))

    session.update(
        status="complete",
        # "no_payment_required: The payment is delayed to a future date" (a trial).
        payment_status="no_payment_required" if trial_days else "paid",
        customer=customer["id"],
        subscription=sub["id"],
        invoice=invoice["id"],
        customer_details={
            **objects.customer_details(customer["email"]),
            **(session.get("customer_details") or {}),
            "email": customer["email"],
        },
        url=None,
    )
    if requires_terms(session):
        session["consent"] = {"promotions": None, "terms_of_service": "accepted"}
    store.save(session)
    store.emit("checkout.session.completed", session)
    return session


def _pay_one_time(
    store: Store,
    session: dict[str, Any],
    customer: dict[str, Any],
    pm: dict[str, Any],
    *,
    authenticated: bool,
) -> dict[str, Any]:
    """Pay a payment-mode session: one PaymentIntent and its Charge, and with
    `invoice_creation.enabled` a post-purchase invoice, paid by that payment ("Generate a
    post-purchase Invoice for one-time payments", SDK params/checkout/_session_create_params.py;
    docs.stripe.com/payments/checkout/receipts). Its lines are the session's, its metadata
    `invoice_data.metadata`; the session shows `payment_intent` and `invoice`.

    Assumption: the sandbox makes the invoice first and collects it with the session's
    PaymentIntent, so a refund of that payment finds the invoice through its InvoicePayment as
    for any invoice; Stripe sends `invoice.paid` after `checkout.session.completed` too.
    """
    failure = card_failure(pm)
    if failure is not None:
        code, decline_code, message = failure
        raise CardError(message, code, decline_code)
    price = session_price(store, session)
    quantity = session["_line_items"][0]["quantity"]
    now = store.now()
    invoice_id = new_id("in_")
    spec = objects.line_spec(
        description=product_name(store, price),
        amount=price["unit_amount"] * quantity,
        price=price,
        quantity=quantity,
        start=now,
        end=now,
        item_id="",
    )
    invoice = objects.invoice(
        now,
        invoice_id=invoice_id,
        customer_obj=customer,
        subscription_obj=None,
        billing_reason="manual",
        lines=[objects.one_time_line(invoice_id, spec)],
        period_start=now,
        period_end=now,
    )
    creation = session.get("invoice_creation") or {}
    invoice["metadata"] = dict((creation.get("invoice_data") or {}).get("metadata") or {})
    invoice["description"] = (creation.get("invoice_data") or {}).get("description")
    invoice["ending_balance"] = customer["balance"]  # Checkout's payment pays it, not the balance
    customer["next_invoice_sequence"] += 1
    store.save(customer)
    store.save(invoice)
    store.emit("invoice.created", invoice)
    finalize_invoice(store, invoice)
    pi = store.get("payment_intent", invoice["_payment_intent"])
    pi.update(metadata=dict(session.get("_payment_intent_metadata") or {}), description=None)
    store.save(pi)
    if not pay_invoice(store, invoice, pm, off_session=False, authenticated=authenticated):
        raise CardError("Your card was declined.", "card_declined", "generic_decline")
    session.update(
        status="complete",
        payment_status="paid",
        customer=customer["id"],
        payment_intent=pi["id"],
        invoice=invoice_id,
        customer_details={
            **objects.customer_details(customer["email"]),
            **(session.get("customer_details") or {}),
            "email": customer["email"],
        },
        url=None,
    )
    if requires_terms(session):
        session["consent"] = {"promotions": None, "terms_of_service": "accepted"}
    store.save(session)
    store.emit("checkout.session.completed", session)
    return session


# --- promotion codes on the hosted page --------------------------------------------------------


def session_subtotal(store: Store, session: dict[str, Any]) -> int:
    return session_price(store, session)["unit_amount"] * session["_line_items"][0]["quantity"]


def session_promotion(
    store: Store, session: dict[str, Any], *, customer_id: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The session's promotion code and its coupon, if they may still be redeemed."""
    promo = store.get("promotion_code", session["_promotion_code"])
    coupon = check_redemption(
        store,
        promo,
        customer_id=customer_id or session.get("customer"),
        subtotal=session_subtotal(store, session),
        currency=session["currency"],
    )
    return promo, coupon


def apply_promotion_code(store: Store, session_id: str, code: str) -> dict[str, Any]:
    """The buyer's "Add promotion code": check it and show the discounted total (nothing is
    redeemed until the session is paid). Raises RedemptionError with the page's words."""
    session = open_session(store, session_id)
    if not session.get("allow_promotion_codes"):
        raise RedemptionError("unknown")
    promo = find_promotion_code(store, code)
    session["_promotion_code"] = promo["id"]
    try:
        _promo, coupon = session_promotion(store, session)
    except RedemptionError:
        session["_promotion_code"] = None
        raise
    subtotal = session_subtotal(store, session)
    off = discount_amount(coupon, subtotal)
    session.update(
        discounts=[{"coupon": coupon["id"], "promotion_code": promo["id"]}],
        # The total follows (update_session_totals); during a trial nothing is due today and
        # the discount applies to the invoices after it.
        total_details={**session["total_details"], "amount_discount": off},
    )
    update_session_totals(store, session, subtotal)
    store.save(session)
    return session


def remove_promotion_code(store: Store, session_id: str) -> dict[str, Any]:
    session = open_session(store, session_id)
    subtotal = session_subtotal(store, session)
    session.update(
        _promotion_code=None,
        discounts=[],
        total_details={**session["total_details"], "amount_discount": 0},
    )
    update_session_totals(store, session, subtotal)
    store.save(session)
    return session


def set_billing_details(
    store: Store,
    session_id: str,
    *,
    address: dict[str, Any],
    business_name: str | None = None,
    tax_id: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The buyer's billing address (and, when the session collects them, a business name and
    tax id): checked, kept on the session, and the tax and total shown again."""
    session = open_session(store, session_id)
    details = {**objects.customer_details(None), **(session.get("customer_details") or {})}
    details["address"] = check_address(address)
    details["business_name"] = details["name"] = None
    details["tax_ids"] = []
    if tax_id and session.get("tax_id_collection"):
        value, _country = check_tax_id(*tax_id)
        details["tax_ids"] = [{"type": tax_id[0], "value": value}]
        details["business_name"] = details["name"] = (business_name or "").strip() or None
        if not details["business_name"]:
            raise StripeAPIError(400, "Enter the business name.", param="business_name")
    session["customer_details"] = details
    update_session_totals(store, session, session_subtotal(store, session))
    store.save(session)
    return session


def _session_customer(store: Store, session: dict[str, Any]) -> dict[str, Any]:
    if session.get("customer"):
        return store.get("customer", session["customer"])
    customer = objects.customer(store.now(), email=session.get("customer_email"))
    store.save(customer)
    store.emit("customer.created", customer)
    return customer


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
