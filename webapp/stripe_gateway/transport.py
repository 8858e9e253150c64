"""How the SDK reaches Stripe: every attempt ends in time, whether Stripe is real or the sandbox.

`BoundedRequestsClient` speaks HTTPS to Stripe (or `STRIPE_API_BASE`); `SandboxHTTPClient` hands
requests to the in-process sandbox's WSGI app. Both cut each attempt at `STRIPE_TIMEOUT_SECONDS`
and at the web request's Stripe deadline (`webapp.stripe_budget`).
"""

from __future__ import annotations

import contextvars
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import Any
from urllib.parse import urlsplit

import requests
import stripe
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from werkzeug.test import EnvironBuilder, run_wsgi_app

from webapp import stripe_budget

log = logging.getLogger(__name__)

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
    response: tuple[Any, int, Mapping[str, str]] = outcome["response"]
    return response


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

    def request_stream(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[Any, int, Mapping[str, str]]:  # pragma: no cover
        raise NotImplementedError("the gateway never streams Stripe responses")

    def close(self) -> None:
        pass


# The connections the current attempt sent its request on, for `_shut_down` (set per helper).
_attempt_connections: contextvars.ContextVar[list[HTTPConnection]] = contextvars.ContextVar(
    "stripe_attempt_connections"
)


class _TrackedHTTPConnection(HTTPConnection):
    """A urllib3 connection that tells the attempt sending a request on it where it is."""

    def request(self, *args: Any, **kwargs: Any) -> None:
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

    # The body is bytes, as in the SDK's own RequestsClient (`SDK/_http_client.py:535-541`),
    # though the base class declares str: the SDK decodes either.
    def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
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
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[str, int, Mapping[str, str]]:
        limit, retryable = _attempt_limit(self._timeout)
        parts = urlsplit(url)
        data = post_data.encode() if isinstance(post_data, str) else post_data
        builder = EnvironBuilder(
            path=parts.path,
            query_string=parts.query,
            base_url=f"{parts.scheme}://{parts.netloc}",
            method=method.upper(),
            headers=list((headers or {}).items()),
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
