"""The one module that talks to Stripe (see DESIGN.md, "Two Stripe modes, one code path").

Intent-level methods over one `stripe.StripeClient` built in `init_app`; every Stripe failure comes
out as one of the exceptions below. With no `STRIPE_SECRET_KEY` the client's transport is the local
sandbox (`webapp.sandbox`), called in-process through its WSGI app; with a key it is HTTPS to
Stripe, or to `STRIPE_API_BASE` when set. Either way each attempt ends within
`STRIPE_TIMEOUT_SECONDS`, and all of a web request's calls within its Stripe budget
(`webapp.stripe_budget`), so a hung Stripe is our error page, never a killed worker.
"""

from __future__ import annotations

import contextvars
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
import stripe
from flask import Flask, current_app
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from werkzeug.test import EnvironBuilder, run_wsgi_app

from webapp import stripe_budget

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


# --- transports: every attempt ends in time ----------------------------------------------------
#
# Both transports bound each HTTP attempt by wall-clock time: `STRIPE_TIMEOUT_SECONDS`, cut to
# what is left of the web request's deadline (`webapp.stripe_budget`). The SDK's own
# `RequestsClient` cannot: its timeout is requests' per-socket-read timeout, so a server that
# trickles a byte now and then holds a call forever (research notes §4.1, §4.6:
# `SDK/_http_client.py:605-613`, `U3/util/timeout.py:96-103`), and `StripeClient` has no per-call
# timeout option (`SDK/_request_options.py:9-17`). The SDK keeps its retry loop, which asks
# `_should_retry` and then sleeps `_sleep_time_seconds` (`SDK/_http_client.py:283-300`); the
# transports only veto a retry, or shorten a sleep, that the deadline leaves no time for.

# With less time left than a retry's shortest backoff sleep (`HTTPClient.INITIAL_DELAY`, 0.5 s;
# `SDK/_http_client.py:86-87, 164-187`) plus this, a failed call fails now rather than retrying.
MIN_ATTEMPT_SECONDS = 0.25


def _attempt_limit(timeout: float) -> tuple[float, bool]:
    """How long the next attempt may take, and whether timing out would be worth a retry.

    Raises a non-retryable connection error when the request's deadline has already passed.
    """
    left = stripe_budget.remaining()
    if left is None:
        return timeout, True
    if left <= 0:
        raise stripe.APIConnectionError(
            "No time left for Stripe in this request (STRIPE_REQUEST_BUDGET_SECONDS)",
            should_retry=False,
        )
    return min(timeout, left), left > timeout


def _run_within(
    limit: float,
    call: Callable[[], tuple[Any, int, Mapping[str, str]]],
    *,
    what: str,
    retryable: bool,
    abandon: Callable[[], None] | None = None,
) -> tuple[Any, int, Mapping[str, str]]:
    """Run `call` in a helper thread carrying this context; wait for it at most `limit` seconds.

    The helper, not the caller, waits on the network, so nothing it blocks in (DNS, connect,
    a trickling read) can hold the caller longer. `abandon` lets the transport cut a call
    given up on, so its thread and socket go too. Stripe may still have done what an abandoned
    POST asked: the same idempotency key on the retry (and, where billing derives the key, on
    the person's next try) makes Stripe answer with that result instead of doing it twice.
    """
    outcome: dict[str, Any] = {}

    def attempt() -> None:
        try:
            outcome["response"] = call()
        except BaseException as exc:  # handed back to the caller's thread below
            outcome["error"] = exc

    context = contextvars.copy_context()
    worker = threading.Thread(
        target=context.run, args=(attempt,), daemon=True, name="stripe-attempt"
    )
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        if abandon is not None:
            abandon()
        raise stripe.APIConnectionError(
            f"Request to {what} timed out after {limit:.3g}s", should_retry=retryable
        )
    if "error" in outcome:
        raise outcome["error"]
    return outcome["response"]


class _BoundedHTTPClient(stripe.HTTPClient):
    """The SDK's retries, minus any that the request's deadline leaves no time for."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def _should_retry(
        self,
        response: tuple[Any, int, Mapping[str, str] | None] | None,
        api_connection_error: stripe.APIConnectionError | None,
        num_retries: int,
        max_network_retries: int | None,
    ) -> bool:
        if not super()._should_retry(
            response, api_connection_error, num_retries, max_network_retries
        ):
            return False
        left = stripe_budget.remaining()
        return left is None or left >= self.INITIAL_DELAY + MIN_ATTEMPT_SECONDS

    def _sleep_time_seconds(self, num_retries: int) -> float:
        # The backoff (0.5 s to 5 s with jitter) never eats the next attempt's time.
        sleep = super()._sleep_time_seconds(num_retries)
        left = stripe_budget.remaining()
        return sleep if left is None else max(0.0, min(sleep, left - MIN_ATTEMPT_SECONDS))

    def request_stream(self, method, url, headers, post_data=None):  # pragma: no cover
        raise NotImplementedError("the gateway never streams Stripe responses")

    def close(self) -> None:
        pass


# The connections the current attempt sent its request on, for `_shut_down` (set per helper).
_attempt_connections: contextvars.ContextVar[list[HTTPConnection]] = contextvars.ContextVar(
    "stripe_attempt_connections"
)


class _TrackedHTTPConnection(HTTPConnection):
    """A urllib3 connection that tells the attempt sending a request on it where it is."""

    def request(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        _attempt_connections.get([]).append(self)
        super().request(*args, **kwargs)


class _TrackedHTTPSConnection(_TrackedHTTPConnection, HTTPSConnection):
    pass


class _TrackedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _TrackedHTTPConnection


class _TrackedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPSConnection


class _TrackingAdapter(HTTPAdapter):
    """requests' adapter, on connections an abandoned attempt can be cut off from."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _TrackedHTTPPool,
            "https": _TrackedHTTPSPool,
        }


def _shut_down(connections: list[HTTPConnection]) -> None:
    """Cut the sockets under an abandoned attempt: its blocked read returns and its thread ends."""
    for connection in connections:
        sock = connection.sock
        if sock is not None:
            with suppress(OSError):
                # The plain socket's shutdown: an SSL socket's own would also tear down its TLS
                # state under the thread still reading from it.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


class BoundedRequestsClient(_BoundedHTTPClient):
    """HTTPS to Stripe through requests, each attempt bounded by wall-clock time.

    One session (keep-alive connections) per calling thread, as the SDK's `RequestsClient`
    keeps (`SDK/_http_client.py:597-600`). Errors are classified as it classifies them
    (`SDK/_http_client.py:640-691`): timeouts and connection failures may be retried, a
    certificate problem or any other failure may not.
    """

    name = "requests-bounded"

    def __init__(self, timeout: float) -> None:
        super().__init__(timeout)
        self._sessions = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._sessions, "session", None)
        if session is None:
            session = requests.Session()
            adapter = _TrackingAdapter()
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            self._sessions.session = session
        return session

    def request(
        self, method: str, url: str, headers: Mapping[str, str] | None, post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        limit, retryable = _attempt_limit(self._timeout)
        session = self._session()
        connections: list[HTTPConnection] = []

        def call() -> tuple[bytes, int, Mapping[str, str]]:
            _attempt_connections.set(connections)
            try:
                response = session.request(
                    method,
                    url,
                    headers=headers,
                    data=post_data,
                    timeout=limit,
                    verify=stripe.ca_bundle_path,
                )
                return response.content, response.status_code, response.headers
            except requests.exceptions.SSLError as exc:
                raise stripe.APIConnectionError(
                    f"Could not verify Stripe's certificate: {exc}", should_retry=False
                ) from exc
            except (requests.exceptions.Timeout, requests.exceptions.ConnectionError) as exc:
                raise stripe.APIConnectionError(
                    f"Network error talking to Stripe: {type(exc).__name__}: {exc}",
                    should_retry=True,
                ) from exc
            except requests.exceptions.RequestException as exc:
                raise stripe.APIConnectionError(
                    f"Request to Stripe failed: {type(exc).__name__}: {exc}", should_retry=False
                ) from exc

        return _run_within(
            limit,
            call,
            what=urlsplit(url).netloc,
            retryable=retryable,
            abandon=lambda: _shut_down(connections),
        )

    def close(self) -> None:
        session = getattr(self._sessions, "session", None)
        if session is not None:
            session.close()


class SandboxHTTPClient(_BoundedHTTPClient):
    """An SDK HTTP client that hands each request to the sandbox's WSGI app in this process.

    No socket is involved, so a one-worker server calling "Stripe" from inside a request cannot
    wait on itself. The call runs in a helper thread (carrying this thread's context, so the
    sandbox still sees the site's request) so that the same limits as over HTTP apply.
    """

    name = "sandbox-in-process"

    def __init__(self, wsgi_app: Callable[..., Any], timeout: float) -> None:
        super().__init__(timeout)
        self._wsgi_app = wsgi_app

    def request(
        self, method: str, url: str, headers: Mapping[str, str] | None, post_data: Any = None
    ) -> tuple[str, int, Mapping[str, str]]:
        limit, retryable = _attempt_limit(self._timeout)
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

        def call() -> tuple[str, int, Mapping[str, str]]:
            app_iter, status, response_headers = run_wsgi_app(
                self._wsgi_app, environ, buffered=True
            )
            body = b"".join(app_iter).decode()
            return body, int(status.split()[0]), {k.lower(): v for k, v in response_headers.items()}

        return _run_within(limit, call, what="the Stripe sandbox", retryable=retryable)


# --- the gateway --------------------------------------------------------------------------------


class StripeGateway:
    """What the app asks of Stripe, in the app's words."""

    def __init__(self, client: stripe.StripeClient, *, sandbox: Sandbox | None = None) -> None:
        self.client = client
        self.sandbox_instance = sandbox
        self.sandbox = sandbox is not None
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
        self, *, customer_id: str, return_url: str, configuration_id: str | None = None
    ) -> stripe.billing_portal.Session:
        params: dict[str, Any] = {"customer": customer_id, "return_url": return_url}
        if configuration_id:
            params["configuration"] = configuration_id
        with self._calling("create_portal_session"):
            return self.client.v1.billing_portal.sessions.create(params=params)  # type: ignore[arg-type]

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
            metadata = configuration.metadata.to_dict() if configuration.metadata else {}
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
            params = {"expand": expand} if expand else None
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

    def invoice_for_payment_intent(self, payment_intent_id: str) -> str | None:
        """The invoice a PaymentIntent paid, through Stripe's InvoicePayment records."""
        with self._calling("list_invoice_payments"):
            listed = self.client.v1.invoice_payments.list(
                params={
                    "payment": {"type": "payment_intent", "payment_intent": payment_intent_id},
                    "limit": 1,
                }
            )
        return listed.data[0].invoice if listed.data else None

    def charges_of(self, payment_intent_id: str) -> list[stripe.Charge]:
        with self._calling("list_charges"):
            listed = self.client.v1.charges.list(
                params={"payment_intent": payment_intent_id, "limit": 100}
            )
            return list(listed.auto_paging_iter())

    def retrieve_charge(self, charge_id: str) -> stripe.Charge:
        with self._calling("retrieve_charge"):
            return self.client.v1.charges.retrieve(charge_id)

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

    def cancel_subscription(
        self, subscription_id: str, *, idempotency_key: str | None = None, **params: Any
    ) -> stripe.Subscription:
        with self._calling("cancel_subscription"):
            return self.client.v1.subscriptions.cancel(
                subscription_id,
                params=params or None,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key} if idempotency_key else None,
            )

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
            http_client=BoundedRequestsClient(timeout),
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
    stripe_budget.init_app(app)


def get_gateway() -> StripeGateway:
    return current_app.extensions["stripe_gateway"]


def sandbox_cli() -> click.Group:
    """The `stripe-sandbox` command group (it refuses to run outside sandbox mode)."""
    from webapp.sandbox.cli import sandbox_cli as group

    return group
