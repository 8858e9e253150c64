"""The one module that talks to Stripe (see DESIGN.md, "Two Stripe modes, one code path").

Intent-level methods over one `stripe.StripeClient` built in `init_app`; every Stripe failure comes
out as one of the exceptions below. With no `STRIPE_SECRET_KEY` the client's transport is the local
sandbox (`webapp.sandbox`), called in-process through its WSGI app; with a key it is HTTPS to
Stripe, or to `STRIPE_API_BASE` when set.
"""

from __future__ import annotations

import contextvars
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import stripe
from flask import Flask, current_app
from werkzeug.test import EnvironBuilder, run_wsgi_app

if TYPE_CHECKING:
    import click

    from webapp.sandbox import Sandbox

log = logging.getLogger(__name__)

SANDBOX_API_KEY = "sk_test_sandbox"
# Where the in-process transport says it sends requests; never resolved, never connected to.
SANDBOX_API_BASE = "http://stripe-sandbox.invalid"
PRICE_CACHE_SECONDS = 60.0
WEBHOOK_TOLERANCE_SECONDS = 300


# --- our exceptions -------------------------------------------------------------------------


class PaymentProviderError(Exception):
    """Stripe could not do what we asked. `user_message` is safe to show to people."""

    user_message = "Something went wrong with our payment provider. Please try again."

    def __init__(self, message: str, *, user_message: str | None = None) -> None:
        super().__init__(message)
        if user_message:
            self.user_message = user_message


class CardDeclined(PaymentProviderError):
    """The card was refused; `decline_code` says why (e.g. `insufficient_funds`)."""

    def __init__(self, message: str, *, decline_code: str | None, user_message: str | None):
        super().__init__(message, user_message=user_message or "Your card was declined.")
        self.decline_code = decline_code


class InvalidRequest(PaymentProviderError):
    """Stripe refused the request as malformed (a 400-class answer): a bug on our side."""

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.code, self.param = code, param


class ResourceMissing(InvalidRequest):
    """The id we asked about does not exist on Stripe (404 `resource_missing`)."""


class AuthenticationFailed(PaymentProviderError):
    """Our API key was refused."""


class ProviderUnavailable(PaymentProviderError):
    """Stripe could not be reached, timed out, failed (5xx) or rate-limited us: try later."""

    user_message = (
        "Our payment provider is not responding right now. Nothing was charged; please try "
        "again in a minute."
    )


class SignatureVerificationFailed(Exception):
    """A webhook's `Stripe-Signature` does not match its body with any of our secrets."""


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def _convert(exc: stripe.StripeError) -> PaymentProviderError:
    code = getattr(exc, "code", None)
    param = getattr(exc, "param", None)
    message = str(exc.user_message or exc)
    if isinstance(exc, stripe.CardError):
        error = exc.error
        decline_code = (error.decline_code if error else None) or code
        return CardDeclined(message, decline_code=decline_code, user_message=exc.user_message)
    if isinstance(exc, stripe.IdempotencyError):
        return InvalidRequest(message, code="idempotency_error", param=param)
    if isinstance(exc, stripe.InvalidRequestError):
        if code == "resource_missing" or exc.http_status == 404:
            return ResourceMissing(message, code=code, param=param)
        return InvalidRequest(message, code=code, param=param)
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return AuthenticationFailed(message)
    if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError | stripe.APIError):
        return ProviderUnavailable(message)
    if (exc.http_status or 0) >= 500:
        return ProviderUnavailable(message)
    return PaymentProviderError(message)


# --- the in-process transport to the sandbox --------------------------------------------------


class SandboxHTTPClient(stripe.HTTPClient):
    """An SDK HTTP client that hands each request to the sandbox's WSGI app in this process.

    No socket is involved, so a one-worker server calling "Stripe" from inside a request cannot
    wait on itself. The call runs in a helper thread (carrying this thread's context, so the
    sandbox still sees the site's request) only so that a timeout can be enforced like a real
    client's.
    """

    name = "sandbox-in-process"

    def __init__(self, wsgi_app: Callable[..., Any], timeout: float) -> None:
        super().__init__()
        self._wsgi_app = wsgi_app
        self._timeout = timeout

    def request(
        self, method: str, url: str, headers: Mapping[str, str] | None, post_data: Any = None
    ) -> tuple[str, int, Mapping[str, str]]:
        parts = urlsplit(url)
        data = post_data.encode() if isinstance(post_data, str) else post_data
        builder = EnvironBuilder(
            path=parts.path,
            query_string=parts.query,
            base_url=f"{parts.scheme}://{parts.netloc}",
            method=method.upper(),
            headers=dict(headers or {}),
            data=data or None,
        )
        environ = builder.get_environ()
        result: dict[str, Any] = {}

        def call() -> None:
            try:
                app_iter, status, response_headers = run_wsgi_app(
                    self._wsgi_app, environ, buffered=True
                )
                result["body"] = b"".join(app_iter).decode()
                result["status"] = int(status.split()[0])
                result["headers"] = {k.lower(): v for k, v in response_headers.items()}
            except BaseException as exc:  # handed back to the caller's thread below
                result["error"] = exc

        context = contextvars.copy_context()
        worker = threading.Thread(target=context.run, args=(call,), daemon=True)
        worker.start()
        worker.join(self._timeout)
        if worker.is_alive():
            raise stripe.APIConnectionError(
                f"Request to the Stripe sandbox timed out after {self._timeout:g}s",
                should_retry=True,
            )
        if "error" in result:
            raise result["error"]
        return result["body"], result["status"], result["headers"]

    def request_stream(self, method, url, headers, post_data=None):  # pragma: no cover
        raise NotImplementedError("the sandbox transport does not stream")

    def close(self) -> None:
        pass


# --- the gateway --------------------------------------------------------------------------------


class StripeGateway:
    """What the app asks of Stripe, in the app's words."""

    def __init__(self, client: stripe.StripeClient, *, sandbox: Sandbox | None = None) -> None:
        self.client = client
        self.sandbox_instance = sandbox
        self.sandbox = sandbox is not None
        self._prices: dict[str, tuple[float, stripe.Price]] = {}
        self._catalog_checked = False
        self._lock = threading.Lock()

    @contextmanager
    def _calling(self, operation: str) -> Iterator[None]:
        """Turn Stripe's exceptions into ours, with one log line (never keys or secrets)."""
        try:
            yield
        except stripe.StripeError as exc:
            converted = _convert(exc)
            log.warning(
                "stripe %s failed: %s status=%s code=%s request_id=%s: %s",
                operation,
                type(converted).__name__,
                exc.http_status,
                getattr(exc, "code", None),
                exc.request_id,
                _first_line(exc.user_message or str(exc)),
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
        if not self.sandbox or self._catalog_checked:
            return
        with self._lock:
            if self._catalog_checked:
                return
            from webapp.catalog import get_catalog
            from webapp.stripe_catalog import sync_catalog

            sync_catalog(self, get_catalog())
            self._catalog_checked = True

    def forget_prices(self) -> None:
        self._prices.clear()

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
            listed = self.client.v1.prices.list(params={"limit": 100, **params})
            return list(listed.auto_paging_iter())

    def create_price(
        self,
        *,
        product_id: str,
        unit_amount: int,
        currency: str,
        interval: str,
        lookup_key: str,
        metadata: dict[str, str],
        transfer_lookup_key: bool = False,
        idempotency_key: str | None = None,
    ) -> stripe.Price:
        with self._calling("create_price"):
            return self.client.v1.prices.create(
                params={
                    "product": product_id,
                    "unit_amount": unit_amount,
                    "currency": currency,
                    "recurring": {"interval": interval},  # type: ignore[typeddict-item]
                    "lookup_key": lookup_key,
                    "transfer_lookup_key": transfer_lookup_key,
                    "metadata": metadata,
                },
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
    ) -> stripe.checkout.Session:
        metadata = {"user_id": str(user_id), "plan": plan_id, "cycle": cycle}
        with self._calling("create_checkout_session"):
            return self.client.v1.checkout.sessions.create(
                params={
                    "mode": "subscription",
                    "customer": customer_id,
                    "client_reference_id": str(user_id),
                    "line_items": [{"price": price_id, "quantity": 1}],
                    "metadata": metadata,
                    "subscription_data": {"metadata": metadata},
                    "success_url": success_url,
                    "cancel_url": cancel_url,
                },
                options={"idempotency_key": idempotency_key},
            )

    def retrieve_checkout_session(
        self, session_id: str, *, expand: list[str] | None = None
    ) -> stripe.checkout.Session:
        with self._calling("retrieve_checkout_session"):
            params = {"expand": expand} if expand else None
            return self.client.v1.checkout.sessions.retrieve(session_id, params=params)

    def expire_checkout_session(self, session_id: str) -> stripe.checkout.Session:
        with self._calling("expire_checkout_session"):
            return self.client.v1.checkout.sessions.expire(session_id)

    def create_portal_session(
        self, *, customer_id: str, return_url: str
    ) -> stripe.billing_portal.Session:
        with self._calling("create_portal_session"):
            return self.client.v1.billing_portal.sessions.create(
                params={"customer": customer_id, "return_url": return_url}
            )

    # --- subscriptions and invoices -----------------------------------------------------------

    def retrieve_subscription(self, subscription_id: str) -> stripe.Subscription:
        with self._calling("retrieve_subscription"):
            return self.client.v1.subscriptions.retrieve(subscription_id)

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

    def list_invoices(self, customer_id: str, limit: int = 24) -> list[stripe.Invoice]:
        with self._calling("list_invoices"):
            listed = self.client.v1.invoices.list(params={"customer": customer_id, "limit": limit})
            return list(listed.data)

    def update_subscription(self, subscription_id: str, **params: Any) -> stripe.Subscription:
        with self._calling("update_subscription"):
            return self.client.v1.subscriptions.update(subscription_id, params=params)  # type: ignore[arg-type]

    def cancel_subscription(self, subscription_id: str) -> stripe.Subscription:
        with self._calling("cancel_subscription"):
            return self.client.v1.subscriptions.cancel(subscription_id)

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
                return self.client.construct_event(payload, signature_header, secret, tolerance)
            except stripe.SignatureVerificationError:
                continue
            except ValueError as exc:  # the body is not JSON
                raise SignatureVerificationFailed(f"invalid payload: {exc}") from None
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
            try:
                event = json.loads(text)
            except ValueError as exc:
                raise SignatureVerificationFailed(f"invalid payload: {exc}") from None
            if not isinstance(event, dict) or not {"id", "type", "created"} <= event.keys():
                raise SignatureVerificationFailed("the payload is not a Stripe event")
            return event
        raise SignatureVerificationFailed("no configured secret matches the signature")


# --- wiring ---------------------------------------------------------------------------------


def _build_client(app: Flask) -> tuple[stripe.StripeClient, Sandbox | None]:
    config = app.config
    timeout = float(config["STRIPE_TIMEOUT_SECONDS"])
    retries = int(config["STRIPE_MAX_NETWORK_RETRIES"])
    if config["STRIPE_SECRET_KEY"]:
        base = config.get("STRIPE_API_BASE") or None
        client = stripe.StripeClient(
            config["STRIPE_SECRET_KEY"],
            http_client=stripe.RequestsClient(timeout=timeout),
            max_network_retries=retries,
            base_addresses={"api": base.rstrip("/")} if base else None,
        )
        return client, None
    from webapp import sandbox as sandbox_package

    sandbox = sandbox_package.init_app(app, api_version=stripe.api_version)
    if not sandbox.public_url:
        sandbox.public_url = config.get("SANDBOX_PUBLIC_URL") or None
    client = stripe.StripeClient(
        SANDBOX_API_KEY,
        http_client=SandboxHTTPClient(sandbox.api, timeout),
        max_network_retries=retries,
        base_addresses={"api": SANDBOX_API_BASE},
    )
    return client, sandbox


def init_app(app: Flask) -> None:
    """Build the one Stripe client for this app and store the gateway in `app.extensions`."""
    # The SDK offers no per-client switch for its telemetry (request timings sent back to
    # Stripe in a header); the module flag is the only one, so it is turned off here, at start-up.
    stripe.enable_telemetry = False
    client, sandbox = _build_client(app)
    app.extensions["stripe_gateway"] = StripeGateway(client, sandbox=sandbox)


def get_gateway() -> StripeGateway:
    return current_app.extensions["stripe_gateway"]


def sandbox_cli() -> click.Group:
    """The `stripe-sandbox` command group (it refuses to run outside sandbox mode)."""
    from webapp.sandbox.cli import sandbox_cli as group

    return group
