"""What the app asks of Stripe, in the app's words: the `StripeGateway` over one StripeClient."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import stripe

from webapp.stripe_gateway.errors import (
    PaymentProviderError,
    ResourceMissing,
    SignatureVerificationFailed,
    convert_error,
    first_line,
    plain_metadata,
)

if TYPE_CHECKING:
    from stripe.params import SubscriptionRetrieveParams
    from stripe.params.checkout import SessionRetrieveParams

    from webapp.sandbox import Sandbox

log = logging.getLogger(__name__)

PRICE_CACHE_SECONDS = 60.0
WEBHOOK_TOLERANCE_SECONDS = 300


class StripeGateway:
    """What the app asks of Stripe, in the app's words."""

    def __init__(
        self,
        client: stripe.StripeClient,
        *,
        sandbox: Sandbox | None = None,
        seed_sandbox: Callable[[StripeGateway], object] | None = None,
    ) -> None:
        self.client = client
        self.sandbox_instance = sandbox
        self.sandbox = sandbox is not None
        # What makes an empty sandbox sell the catalog (the factory passes the catalog sync):
        # given in, so the gateway never imports the code that calls it.
        self._seed_sandbox = seed_sandbox
        self._prices: dict[str, tuple[float, stripe.Price]] = {}
        self._prices_by_id: dict[str, stripe.Price] = {}
        self._portal_configuration: tuple[float, str] | None = None
        self._catalog_checked = False
        self._lock = threading.Lock()

    @contextmanager
    def _calling(self, operation: str) -> Iterator[None]:
        """Turn Stripe's exceptions into ours, with one log line (never keys or secrets)."""
        try:
            yield
        except stripe.StripeError as exc:
            converted = convert_error(exc)
            log.warning(
                "stripe %s failed: %s status=%s code=%s request_id=%s: %s",
                operation,
                type(converted).__name__,
                exc.http_status,
                getattr(exc, "code", None),
                exc.request_id,
                first_line(exc.user_message or str(exc)),
            )
            raise converted from exc

    # --- catalog ------------------------------------------------------------------------------

    def price_for(self, lookup_key: str) -> stripe.Price:
        """The active price with this lookup key (cached for a minute per process)."""
        cached = self._prices.get(lookup_key)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        self._ensure_sandbox_catalog()
        with self._calling("price_for"):
            prices = self.client.v1.prices.list(
                params={"lookup_keys": [lookup_key], "active": True, "limit": 1}
            )
        if not prices.data:
            raise ResourceMissing(
                f"no active price with lookup key {lookup_key!r}", code="resource_missing"
            )
        self._prices[lookup_key] = (time.monotonic() + PRICE_CACHE_SECONDS, prices.data[0])
        return prices.data[0]

    def _ensure_sandbox_catalog(self) -> None:
        # The sandbox starts empty: make it sell the catalog the first time a price is needed.
        if not self.sandbox or self._seed_sandbox is None or self._catalog_checked:
            return
        with self._lock:
            if self._catalog_checked:
                return
            self._seed_sandbox(self)
            self._catalog_checked = True

    def forget_prices(self) -> None:
        self._prices.clear()
        self._prices_by_id.clear()
        self._portal_configuration = None

    def retrieve_price(self, price_id: str) -> stripe.Price:
        """A price by id, kept for the life of the process.

        What billing reads of a price by id is what never changes once the catalog sync has
        written it: its amount, interval and `plan_id`/`cycle` metadata. (Archiving and lookup
        keys do change; read those through `price_for` or a fresh list.)
        """
        cached = self._prices_by_id.get(price_id)
        if cached is not None:
            return cached
        with self._calling("retrieve_price"):
            price = self.client.v1.prices.retrieve(price_id)
        if len(self._prices_by_id) > 1000:  # a bound, not an expected size: we sell 8 prices
            self._prices_by_id.clear()
        if plain_metadata(price.metadata).get("plan_id"):
            # Only a price that says what it is for: one without may get it from the next sync.
            self._prices_by_id[price_id] = price
        return price

    def update_price(self, price_id: str, **params: Any) -> stripe.Price:
        with self._calling("update_price"):
            self._prices_by_id.pop(price_id, None)
            return self.client.v1.prices.update(price_id, params=params)  # type: ignore[arg-type]

    def list_products(self) -> list[stripe.Product]:
        with self._calling("list_products"):
            return list(self.client.v1.products.list(params={"limit": 100}).auto_paging_iter())

    def create_product(
        self, *, name: str, metadata: dict[str, str], idempotency_key: str | None = None
    ) -> stripe.Product:
        with self._calling("create_product"):
            return self.client.v1.products.create(
                params={"name": name, "metadata": metadata},
                options={"idempotency_key": idempotency_key} if idempotency_key else None,
            )

    def update_product(self, product_id: str, **params: Any) -> stripe.Product:
        with self._calling("update_product"):
            return self.client.v1.products.update(product_id, params=params)  # type: ignore[arg-type]

    def list_prices(self, **params: Any) -> list[stripe.Price]:
        with self._calling("list_prices"):
            listed = self.client.v1.prices.list(params={"limit": 100, **params})  # type: ignore[arg-type]
            return list(listed.auto_paging_iter())

    def create_price(
        self,
        *,
        product_id: str,
        unit_amount: int,
        currency: str,
        interval: str | None,
        lookup_key: str,
        metadata: dict[str, str],
        transfer_lookup_key: bool = False,
        idempotency_key: str | None = None,
    ) -> stripe.Price:
        """A recurring price per `interval`, or with `interval` None a one-time price (a
        credit pack): Stripe makes a price without `recurring` `type=one_time`."""
        params: dict[str, Any] = {
            "product": product_id,
            "unit_amount": unit_amount,
            "currency": currency,
            "lookup_key": lookup_key,
            "transfer_lookup_key": transfer_lookup_key,
            "metadata": metadata,
        }
        if interval is not None:
            params["recurring"] = {"interval": interval}
        with self._calling("create_price"):
            return self.client.v1.prices.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key} if idempotency_key else None,
            )

    def archive_price(self, price_id: str) -> stripe.Price:
        with self._calling("archive_price"):
            self.forget_prices()
            return self.client.v1.prices.update(price_id, params={"active": False})

    # --- customers and checkout ---------------------------------------------------------------

    def create_customer(self, *, email: str, user_id: int, idempotency_key: str) -> stripe.Customer:
        with self._calling("create_customer"):
            return self.client.v1.customers.create(
                params={"email": email, "metadata": {"user_id": str(user_id)}},
                options={"idempotency_key": idempotency_key},
            )

    def customer_is_deleted(self, customer_id: str) -> bool:
        """True when Stripe says the customer is deleted (it retrieves as `{"deleted": true}`)."""
        with self._calling("retrieve_customer"):
            customer = self.client.v1.customers.retrieve(customer_id)
        return bool(getattr(customer, "deleted", False))

    def delete_customer(self, customer_id: str) -> None:
        """Delete the customer at Stripe, which also ends its subscriptions at once and removes
        its cards; Stripe keeps its invoices and payments, and the customer retrieves as
        `{"deleted": true}` from then on. Deleting it again is not an error here (DELETE is
        idempotent by definition, so no idempotency key; Stripe may answer a second one with
        `resource_missing`)."""
        with self._calling("delete_customer"):
            try:
                self.client.v1.customers.delete(customer_id)
            except stripe.InvalidRequestError as exc:
                if getattr(exc, "code", None) != "resource_missing":
                    raise

    # --- company details: the customer's name, address and tax ids ------------------------------

    def retrieve_customer_details(self, customer_id: str) -> stripe.Customer:
        """The customer with its tax ids (`expand[]=tax_ids`: left out unless asked for)."""
        with self._calling("retrieve_customer"):
            return self.client.v1.customers.retrieve(customer_id, params={"expand": ["tax_ids"]})

    def update_customer_details(
        self, customer_id: str, *, name: str | None, address: dict[str, str] | None
    ) -> stripe.Customer:
        """Set the customer's (company) name and billing address; None or "" clears them
        (Stripe unsets a field sent empty). Stripe Tax taxes where this address is."""
        params: dict[str, Any] = {"name": name or "", "address": address or ""}
        with self._calling("update_customer"):
            return self.client.v1.customers.update(customer_id, params=params)  # type: ignore[arg-type]

    def create_tax_id(self, customer_id: str, *, tax_type: str, value: str) -> stripe.TaxId:
        """Add a tax id (`eu_vat`, `gb_vat` …) to the customer; Stripe checks its format."""
        with self._calling("create_tax_id"):
            return self.client.v1.customers.tax_ids.create(
                customer_id,
                params={"type": tax_type, "value": value},
            )

    def delete_tax_id(self, customer_id: str, tax_id: str) -> None:
        """Remove a tax id; one already gone is not an error (as with `delete_customer`)."""
        with self._calling("delete_tax_id"):
            try:
                self.client.v1.customers.tax_ids.delete(customer_id, tax_id)
            except stripe.InvalidRequestError as exc:
                if getattr(exc, "code", None) != "resource_missing":
                    raise

    def create_checkout_session(
        self,
        *,
        customer_id: str,
        price_id: str,
        user_id: int,
        plan_id: str,
        cycle: str,
        success_url: str,
        cancel_url: str,
        idempotency_key: str,
        option_params: dict[str, Any] | None = None,
    ) -> stripe.checkout.Session:
        """A subscription-mode session; `option_params` are the checkout options in force
        (`CheckoutOptions.session_params`: `allow_promotion_codes`…)."""
        metadata = {"user_id": str(user_id), "plan": plan_id, "cycle": cycle}
        options = dict(option_params or {})
        # Options may add to `subscription_data` (a trial); our metadata stays.
        subscription_data = {**options.pop("subscription_data", {}), "metadata": metadata}
        params: dict[str, Any] = {
            "mode": "subscription",
            "customer": customer_id,
            "client_reference_id": str(user_id),
            "line_items": [{"price": price_id, "quantity": 1}],
            "metadata": metadata,
            "subscription_data": subscription_data,
            "success_url": success_url,
            "cancel_url": cancel_url,
            **options,
        }
        with self._calling("create_checkout_session"):
            return self.client.v1.checkout.sessions.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            )

    def create_pack_checkout_session(
        self,
        *,
        customer_id: str,
        price_id: str,
        user_id: int,
        pack_id: str,
        credits: int,
        pack_name: str,
        success_url: str,
        cancel_url: str,
        idempotency_key: str,
        option_params: dict[str, Any] | None = None,
    ) -> stripe.checkout.Session:
        """A payment-mode session for one credit pack, with a paid invoice made after payment
        (`invoice_creation`: "Generate a post-purchase Invoice for one-time payments", SDK
        params/checkout/_session_create_params.py) so the buyer gets a receipt and refunds
        reach the pack through the invoice, as they reach a plan's credits."""
        # What was bought, as it was at checkout: fulfilment grants this (billing/packs.py).
        metadata = {
            "user_id": str(user_id),
            "pack_id": pack_id,
            "credits": str(credits),
            "pack_name": pack_name,
        }
        params: dict[str, Any] = {
            "mode": "payment",
            "customer": customer_id,
            "client_reference_id": str(user_id),
            "line_items": [{"price": price_id, "quantity": 1}],
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata},
            "invoice_creation": {"enabled": True, "invoice_data": {"metadata": metadata}},
            "success_url": success_url,
            "cancel_url": cancel_url,
            **(option_params or {}),
        }
        with self._calling("create_checkout_session"):
            return self.client.v1.checkout.sessions.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            )

    def retrieve_checkout_session(
        self, session_id: str, *, expand: list[str] | None = None
    ) -> stripe.checkout.Session:
        with self._calling("retrieve_checkout_session"):
            params: SessionRetrieveParams | None = {"expand": expand} if expand else None
            return self.client.v1.checkout.sessions.retrieve(session_id, params=params)

    def expire_checkout_session(self, session_id: str) -> stripe.checkout.Session:
        with self._calling("expire_checkout_session"):
            return self.client.v1.checkout.sessions.expire(session_id)

    def create_portal_session(
        self, *, customer_id: str, return_url: str, configuration_id: str | None = None
    ) -> stripe.billing_portal.Session:
        params: dict[str, Any] = {"customer": customer_id, "return_url": return_url}
        if configuration_id:
            params["configuration"] = configuration_id
        with self._calling("create_portal_session"):
            return self.client.v1.billing_portal.sessions.create(params=params)  # type: ignore[arg-type]

    # --- coupons and promotion codes -----------------------------------------------------------

    def create_coupon(
        self,
        *,
        duration: str,
        percent_off: float | None = None,
        amount_off: int | None = None,
        currency: str | None = None,
        duration_in_months: int | None = None,
        max_redemptions: int | None = None,
        redeem_by: int | None = None,
        name: str | None = None,
        coupon_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> stripe.Coupon:
        """A coupon: `percent_off`, or `amount_off` in `currency`; `duration` once, repeating
        (for `duration_in_months`) or forever."""
        given = {
            "duration": duration,
            "percent_off": percent_off,
            "amount_off": amount_off,
            "currency": currency,
            "duration_in_months": duration_in_months,
            "max_redemptions": max_redemptions,
            "redeem_by": redeem_by,
            "name": name,
            "id": coupon_id,
        }
        params = {key: value for key, value in given.items() if value is not None}
        with self._calling("create_coupon"):
            return self.client.v1.coupons.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key} if idempotency_key else None,
            )

    def retrieve_coupon(self, coupon_id: str) -> stripe.Coupon:
        with self._calling("retrieve_coupon"):
            return self.client.v1.coupons.retrieve(coupon_id)

    def create_promotion_code(
        self,
        *,
        coupon_id: str,
        code: str,
        max_redemptions: int | None = None,
        expires_at: int | None = None,
        first_time_transaction: bool = False,
        idempotency_key: str | None = None,
    ) -> stripe.PromotionCode:
        """A customer-facing code for a coupon (since basil: `promotion[coupon]`)."""
        params: dict[str, Any] = {
            "promotion": {"type": "coupon", "coupon": coupon_id},
            "code": code,
        }
        if max_redemptions is not None:
            params["max_redemptions"] = max_redemptions
        if expires_at is not None:
            params["expires_at"] = expires_at
        if first_time_transaction:
            params["restrictions"] = {"first_time_transaction": True}
        with self._calling("create_promotion_code"):
            return self.client.v1.promotion_codes.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key} if idempotency_key else None,
            )

    def find_promotion_codes(self, code: str) -> list[stripe.PromotionCode]:
        """Promotion codes with this code (active or not)."""
        with self._calling("list_promotion_codes"):
            listed = self.client.v1.promotion_codes.list(params={"code": code, "limit": 100})
            return list(listed.auto_paging_iter())

    def set_promotion_code_active(
        self, promotion_code_id: str, active: bool
    ) -> stripe.PromotionCode:
        with self._calling("update_promotion_code"):
            return self.client.v1.promotion_codes.update(
                promotion_code_id, params={"active": active}
            )

    # --- billing-portal configurations ---------------------------------------------------------

    def list_portal_configurations(self) -> list[stripe.billing_portal.Configuration]:
        with self._calling("list_portal_configurations"):
            listed = self.client.v1.billing_portal.configurations.list(params={"limit": 100})
            return list(listed.auto_paging_iter())

    def create_portal_configuration(
        self, params: dict[str, Any], *, idempotency_key: str
    ) -> stripe.billing_portal.Configuration:
        with self._calling("create_portal_configuration"):
            self._portal_configuration = None
            return self.client.v1.billing_portal.configurations.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            )

    def update_portal_configuration(
        self, configuration_id: str, params: dict[str, Any]
    ) -> stripe.billing_portal.Configuration:
        with self._calling("update_portal_configuration"):
            self._portal_configuration = None
            return self.client.v1.billing_portal.configurations.update(
                configuration_id,
                params=params,  # type: ignore[arg-type]
            )

    def managed_portal_configuration_id(self, marker: dict[str, str]) -> str | None:
        """The id of the active configuration whose metadata holds `marker` (cached a minute)."""
        cached = self._portal_configuration
        if cached and cached[0] > time.monotonic():
            return cached[1]
        self._ensure_sandbox_catalog()
        for configuration in self.list_portal_configurations():
            metadata = plain_metadata(configuration.metadata)
            if configuration.active and marker.items() <= metadata.items():
                self._portal_configuration = (
                    time.monotonic() + PRICE_CACHE_SECONDS,
                    configuration.id,
                )
                return configuration.id
        return None

    # --- subscriptions and invoices -----------------------------------------------------------

    def retrieve_subscription(
        self, subscription_id: str, *, expand: list[str] | None = None
    ) -> stripe.Subscription:
        with self._calling("retrieve_subscription"):
            params: SubscriptionRetrieveParams | None = {"expand": expand} if expand else None
            return self.client.v1.subscriptions.retrieve(subscription_id, params=params)

    def list_subscriptions(self, customer_id: str) -> list[stripe.Subscription]:
        """Every subscription of the customer, canceled ones included."""
        with self._calling("list_subscriptions"):
            listed = self.client.v1.subscriptions.list(
                params={"customer": customer_id, "status": "all", "limit": 100}
            )
            return list(listed.auto_paging_iter())

    def retrieve_invoice(self, invoice_id: str) -> stripe.Invoice:
        with self._calling("retrieve_invoice"):
            return self.client.v1.invoices.retrieve(invoice_id)

    def invoice_lines(self, invoice: stripe.Invoice) -> list[stripe.InvoiceLineItem]:
        """Every line of `invoice`: the embedded first page, and the rest when there is more."""
        lines = invoice.lines
        if not lines.has_more:
            return list(lines.data)
        with self._calling("list_invoice_lines"):
            listed = self.client.v1.invoices.line_items.list(invoice.id, params={"limit": 100})
            return list(listed.auto_paging_iter())

    def invoice_payments(self, invoice_id: str) -> list[stripe.InvoicePayment]:
        with self._calling("list_invoice_payments"):
            listed = self.client.v1.invoice_payments.list(
                params={"invoice": invoice_id, "limit": 100}
            )
            return list(listed.auto_paging_iter())

    def payment_awaits_authentication(self, invoice_id: str) -> bool:
        """Whether the invoice's payment in progress waits for the cardholder to authenticate
        (3-D Secure): an `open` InvoicePayment whose PaymentIntent is `requires_action`
        (SDK `_invoice_payment.py`, `_payment_intent.py`)."""
        for payment in self.invoice_payments(invoice_id):
            intent_id = payment.payment.payment_intent if payment.payment else None
            if payment.status != "open" or not intent_id:
                continue
            if not isinstance(intent_id, str):
                intent_id = intent_id.id
            with self._calling("retrieve_payment_intent"):
                intent = self.client.v1.payment_intents.retrieve(intent_id)
            if intent.status == "requires_action":
                return True
        return False

    def invoice_for_payment_intent(self, payment_intent_id: str) -> str | None:
        """The invoice a PaymentIntent paid, through Stripe's InvoicePayment records."""
        with self._calling("list_invoice_payments"):
            listed = self.client.v1.invoice_payments.list(
                params={
                    "payment": {"type": "payment_intent", "payment_intent": payment_intent_id},
                    "limit": 1,
                }
            )
        if not listed.data:
            return None
        invoice = listed.data[0].invoice  # an id unless expanded
        return invoice if isinstance(invoice, str) else invoice.id

    def charges_of(self, payment_intent_id: str) -> list[stripe.Charge]:
        with self._calling("list_charges"):
            listed = self.client.v1.charges.list(
                params={"payment_intent": payment_intent_id, "limit": 100}
            )
            return list(listed.auto_paging_iter())

    def credit_notes_of(self, invoice_id: str) -> list[stripe.CreditNote]:
        with self._calling("list_credit_notes"):
            listed = self.client.v1.credit_notes.list(params={"invoice": invoice_id, "limit": 100})
            return list(listed.auto_paging_iter())

    def disputes_of(self, payment_intent_id: str) -> list[stripe.Dispute]:
        with self._calling("list_disputes"):
            listed = self.client.v1.disputes.list(
                params={"payment_intent": payment_intent_id, "limit": 100}
            )
            return list(listed.auto_paging_iter())

    def create_refund(
        self,
        *,
        payment_intent_id: str,
        reason: str,
        metadata: dict[str, str],
        idempotency_key: str,
        amount: int | None = None,
    ) -> stripe.Refund:
        params: dict[str, Any] = {
            "payment_intent": payment_intent_id,
            "reason": reason,
            "metadata": metadata,
        }
        if amount is not None:
            params["amount"] = amount
        with self._calling("create_refund"):
            return self.client.v1.refunds.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            )

    def list_invoices(
        self, customer_id: str, limit: int = 24, *, subscription_id: str | None = None
    ) -> list[stripe.Invoice]:
        params: dict[str, Any] = {"customer": customer_id, "limit": limit}
        if subscription_id:
            params["subscription"] = subscription_id
        with self._calling("list_invoices"):
            listed = self.client.v1.invoices.list(params=params)  # type: ignore[arg-type]
            return list(listed.data)

    def update_subscription(self, subscription_id: str, **params: Any) -> stripe.Subscription:
        with self._calling("update_subscription"):
            return self.client.v1.subscriptions.update(subscription_id, params=params)  # type: ignore[arg-type]

    # --- plan switches (webapp/billing/switches.py) ----------------------------------------------

    def preview_switch(
        self,
        subscription_id: str,
        *,
        item_id: str,
        price_id: str,
        proration_behavior: str,
        reset_billing_cycle: bool = False,
        proration_date: int | None = None,
        recurring: bool = False,
    ) -> stripe.Invoice:
        """The invoice Stripe would make if the subscription's item moved to `price_id`
        (`invoices.create_preview`; `recurring`: the recurring charge only, no prorations)."""
        details: dict[str, Any] = {
            "items": [{"id": item_id, "price": price_id}],
            "proration_behavior": proration_behavior,
        }
        if reset_billing_cycle:
            details["billing_cycle_anchor"] = {"type": "now"}
        if proration_date is not None:
            details["proration_date"] = proration_date
        params: dict[str, Any] = {"subscription": subscription_id, "subscription_details": details}
        if recurring:
            params["preview_mode"] = "recurring"
        with self._calling("preview_switch"):
            return self.client.v1.invoices.create_preview(params=params)  # type: ignore[arg-type]

    def switch_price_now(
        self,
        subscription_id: str,
        *,
        item_id: str,
        price_id: str,
        reset_billing_cycle: bool,
        proration_date: int,
        idempotency_key: str,
    ) -> stripe.Subscription:
        """Move the item to `price_id` at once, invoiced and charged at once, prorated as of
        `proration_date` (the previewed one, so the charge is the previewed figure). A refused
        card changes nothing (`error_if_incomplete`), as in the portal."""
        params: dict[str, Any] = {
            "items": [{"id": item_id, "price": price_id}],
            "proration_behavior": "always_invoice",
            "proration_date": proration_date,
            "payment_behavior": "error_if_incomplete",
        }
        if reset_billing_cycle:
            params["billing_cycle_anchor"] = {"type": "now"}
        with self._calling("switch_price_now"):
            return self.client.v1.subscriptions.update(
                subscription_id,
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            )

    def schedule_price_at_period_end(
        self,
        subscription_id: str,
        *,
        schedule_id: str | None,
        price_id: str,
        idempotency_key: str,
    ) -> stripe.SubscriptionSchedule:
        """Switch to `price_id` when the current period ends, through a subscription schedule
        (as the portal does for a scheduled downgrade): one made from the subscription (or its
        idle one, `schedule_id`), then given a second phase on the new price."""
        with self._calling("schedule_price_at_period_end"):
            schedules = self.client.v1.subscription_schedules
            if schedule_id is None:
                schedule = schedules.create(
                    params={"from_subscription": subscription_id},
                    options={"idempotency_key": f"{idempotency_key}:create"},
                )
            else:
                schedule = schedules.retrieve(schedule_id)
            current = schedule.phases[0]
            phases: list[dict[str, Any]] = [
                {
                    "items": [
                        {"price": id_of_price(item.price), "quantity": item.quantity or 1}
                        for item in current["items"]
                    ],
                    "start_date": current.start_date,
                    "end_date": current.end_date,
                },
                {"items": [{"price": price_id, "quantity": 1}], "proration_behavior": "none"},
            ]
            return schedules.update(
                schedule.id,
                params={"phases": phases, "end_behavior": "release"},  # type: ignore[arg-type]
                options={"idempotency_key": f"{idempotency_key}:phases"},
            )

    def cancel_subscription(
        self, subscription_id: str, *, idempotency_key: str | None = None, **params: Any
    ) -> stripe.Subscription:
        with self._calling("cancel_subscription"):
            return self.client.v1.subscriptions.cancel(
                subscription_id,
                params=params or None,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key} if idempotency_key else None,
            )

    # --- events (reconciliation: webapp/billing/reconcile.py) ----------------------------------

    def list_events(
        self,
        *,
        created_after: int,
        types: list[str],
        undelivered_only: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Events created after `created_after` (Unix seconds) of `types` (at most 20, Stripe's
        limit), newest first, page after page; each as the plain JSON a webhook would carry.
        `undelivered_only`: only those some endpoint has not had (`delivery_success=false`)."""
        params: dict[str, Any] = {"created": {"gt": created_after}, "types": types, "limit": 100}
        if undelivered_only:
            params["delivery_success"] = False
        while True:
            with self._calling("list_events"):
                page = self.client.v1.events.list(params=params)  # type: ignore[arg-type]
            # The events as sent, not the SDK's objects (whose numbers come back as Decimal):
            # the ledger stores the JSON a webhook delivery would have carried.
            response = page.last_response
            if response is None:  # the SDK keeps the response of every list call
                raise PaymentProviderError("Stripe's event list came without its response")
            events = json.loads(response.body)["data"]
            yield from events
            if not page.has_more or not events:
                return
            params["starting_after"] = events[-1]["id"]

    def now(self) -> int:
        """Stripe's "now" in Unix seconds: the wall clock, or the sandbox's test clock."""
        if self.sandbox_instance is not None:
            with self.sandbox_instance.store() as store:
                return store.now()
        return int(time.time())

    # --- webhooks -----------------------------------------------------------------------------

    def construct_event(
        self,
        payload: bytes,
        signature_header: str,
        secrets: list[str],
        *,
        tolerance: int = WEBHOOK_TOLERANCE_SECONDS,
    ) -> stripe.Event:
        """Verify a webhook against each secret in turn (so secrets can be rotated)."""
        if not signature_header:
            raise SignatureVerificationFailed("no Stripe-Signature header")
        for secret in secrets:
            if not secret:
                continue
            try:
                event = self.client.construct_event(payload, signature_header, secret, tolerance)
            except stripe.SignatureVerificationError:
                continue
            except ValueError as exc:  # the body is not JSON
                raise SignatureVerificationFailed(f"invalid payload: {exc}") from None
            _refuse_future_timestamp(signature_header, tolerance)
            return event
        raise SignatureVerificationFailed("no configured secret matches the signature")

    def verify_webhook(
        self,
        payload: bytes,
        signature_header: str,
        secrets: list[str],
        *,
        tolerance: int = WEBHOOK_TOLERANCE_SECONDS,
    ) -> dict[str, Any]:
        """Like `construct_event`, but the event comes back as plain JSON data.

        The webhook endpoint stores the payload as it came and reads only a few fields, so it
        need not build the SDK's object tree for every delivery.
        """
        if not signature_header:
            raise SignatureVerificationFailed("no Stripe-Signature header")
        text = payload.decode("utf-8", errors="replace")
        for secret in filter(None, secrets):
            try:
                stripe.WebhookSignature.verify_header(text, signature_header, secret, tolerance)
            except stripe.SignatureVerificationError:
                continue
            _refuse_future_timestamp(signature_header, tolerance)
            try:
                event = json.loads(text)
            except ValueError as exc:
                raise SignatureVerificationFailed(f"invalid payload: {exc}") from None
            if not isinstance(event, dict) or not {"id", "type", "created"} <= event.keys():
                raise SignatureVerificationFailed("the payload is not a Stripe event")
            return event
        raise SignatureVerificationFailed("no configured secret matches the signature")


def id_of_price(price: Any) -> str:
    """A schedule phase item's price: an id, or the expanded Price."""
    return price if isinstance(price, str) else price.id


def _refuse_future_timestamp(signature_header: str, tolerance: int) -> None:
    """The SDK's tolerance looks only into the past: a signature stamped far ahead would stay
    replayable until that future moment, so refuse one more than `tolerance` seconds ahead
    (clock skew between Stripe and us is seconds, not minutes)."""
    stamps = [
        part.partition("=")[2].strip()
        for part in signature_header.split(",")
        if part.strip().startswith("t=")
    ]
    for stamp in stamps:
        if not stamp.isdigit() or int(stamp) > time.time() + tolerance:
            raise SignatureVerificationFailed("signature timestamp is in the future")
