"""Stripe calls fit inside a request (issue 12, point 10).

A Stripe that never answers, trickles, or answers slowly call after call costs a web request at
most STRIPE_REQUEST_BUDGET_SECONDS, and the person gets our error page or JSON error instead of a
connection dropped by gunicorn. CLI commands and background work keep their per-call limits.

Real sockets, the real SDK and the app's real transport: the "Stripe" below is a TCP server in
this process, reached with STRIPE_SECRET_KEY and STRIPE_API_BASE as production reaches Stripe.
Settings are tiny so the tests are quick; the arithmetic in each test follows from them and from
the SDK's backoff (0.5 s before the first retry, 0.5-1 s before the second).
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from tests.conftest import AuthActions, create_user, csrf_token, make_app
from tests.sandbox.helpers import sandbox_of
from webapp import create_app, stripe_budget
from webapp.config import Config, ConfigError
from webapp.extensions import db
from webapp.stripe_gateway import BoundedRequestsClient, ProviderUnavailable, get_gateway

# How late past its budget a page may answer: the database, the page, thread hand-offs.
MARGIN = 0.5
PASSWORD = "correct horse battery"


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    # The sandbox-mode `app` only serves "Stripe" here; it must not process its own events.
    return {"SANDBOX_DELIVER_TO_SELF": False}


# --- a Stripe that misbehaves, over real TCP ---------------------------------------------------


class BrokenStripe:
    """Reads each request, then never answers ("silent") or sends one byte every `interval`
    seconds, each well inside any read timeout ("trickle"). Either way it lets go after
    `give_up` seconds, so a transport that would wait forever fails a test instead of hanging it.
    """

    def __init__(self, mode: str, interval: float = 0.1, give_up: float = 10.0) -> None:
        self.mode, self.interval, self.give_up = mode, interval, give_up
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.requests: list[float] = []  # when each request arrived
        self.hung_up: list[float] = []  # when the client let go of each connection
        self._connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def attempts(self) -> int:
        return len(self.requests)

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self._connections.append(connection)
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with contextlib.suppress(OSError), connection:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                head += chunk
            self.requests.append(time.monotonic())
            if self.mode == "trickle":
                connection.sendall(b"HTTP/1.1 200 OK\r\nX-Trickle: ")
            ends = time.monotonic() + self.give_up
            while time.monotonic() < ends:
                readable, _, _ = select.select([connection], [], [], self.interval)
                if readable and not connection.recv(65536):
                    break  # the client closed the connection
                if self.mode == "trickle":
                    connection.sendall(b"x")
        self.hung_up.append(time.monotonic())

    def close(self) -> None:
        self.listener.close()
        for connection in self._connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def silent_stripe() -> Iterator[BrokenStripe]:
    server = BrokenStripe("silent")
    yield server
    server.close()


@pytest.fixture
def trickling_stripe() -> Iterator[BrokenStripe]:
    server = BrokenStripe("trickle")
    yield server
    server.close()


class SlowSandbox:
    """The sandbox's API over HTTP, answering each `/v1` call after `delay` seconds."""

    def __init__(self, app: Flask, delay: float) -> None:
        from webapp.sandbox.cli import APIAndSite

        self.delay, self.calls = delay, 0
        inner = APIAndSite(app, sandbox_of(app))

        def slow(environ: dict[str, Any], start_response: Callable[..., Any]):
            if environ["PATH_INFO"].startswith("/v1/"):
                self.calls += 1
                time.sleep(self.delay)
            return inner(environ, start_response)

        self.server = make_server("127.0.0.1", 0, slow, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def real_site(app: Flask, database_url: str) -> Iterator[Callable[..., Flask]]:
    """Build the site in real mode (a secret key) against a given "Stripe", on the test database."""
    built: list[Flask] = []

    def build(api_base: str, **settings: Any) -> Flask:
        site = make_app(
            database_url,
            STRIPE_SECRET_KEY="sk_test_x",
            STRIPE_API_BASE=api_base,
            STRIPE_WEBHOOK_SECRET="whsec_test_timeouts",  # without one, real mode refuses webhooks
            **settings,
        )
        built.append(site)
        return site

    yield build
    for site in built:
        with site.app_context():
            db.session.remove()
            db.engine.dispose()


def logged_in(site: Flask) -> FlaskClient:
    create_user(site, password=PASSWORD)
    client = site.test_client()
    assert AuthActions(site, client).login(password=PASSWORD).status_code in (302, 303)
    return client


def post_checkout(client: FlaskClient) -> tuple[Any, float]:
    """The pricing page's Subscribe button, timed from the POST alone."""
    token = csrf_token(client, "/pricing")
    data = {"plan": "professional", "cycle": "monthly", "csrf_token": token}
    started = time.monotonic()
    response = client.post("/checkout", data=data)
    return response, time.monotonic() - started


def post_api_checkout(client: FlaskClient) -> tuple[Any, float]:
    token = client.post(
        "/api/v1/auth/token", json={"email": "ada@example.com", "password": PASSWORD}
    ).get_json()["accessToken"]
    started = time.monotonic()
    response = client.post(
        "/api/v1/subscriptions/checkout",
        json={"planId": "starter"},
        headers={"Authorization": f"Bearer {token}"},
    )
    return response, time.monotonic() - started


def eventually(check: Callable[[], bool], within: float = 2.0) -> bool:
    ends = time.monotonic() + within
    while not check():
        if time.monotonic() > ends:
            return False
        time.sleep(0.02)
    return True


def is_our_error_page(response: Any) -> bool:
    return response.status_code == 502 and "Payments are unavailable right now" in (
        response.get_data(as_text=True)
    )


# --- a Stripe that never answers ---------------------------------------------------------------

# Per attempt 0.5 s, so without a budget a call could take 0.5 + 0.5 + 0.5 + 1 + 0.5 = 3 s.
SILENT = {
    "STRIPE_TIMEOUT_SECONDS": 0.5,
    "STRIPE_MAX_NETWORK_RETRIES": 2,
    "STRIPE_REQUEST_BUDGET_SECONDS": 1.5,
}
# Within 1.5 s: an attempt (0-0.5 s), the first backoff (0.5 s), a second attempt cut to what is
# left (1.0-1.5 s). No time remains for the second backoff and a third attempt.
SILENT_ATTEMPTS_IN_BUDGET = 2


def test_checkout_page_with_a_silent_stripe_is_our_error_page_within_the_budget(
    real_site, silent_stripe
):
    client = logged_in(real_site(silent_stripe.url, **SILENT))
    response, elapsed = post_checkout(client)
    assert is_our_error_page(response), response.status_code
    assert 1.5 - 0.1 <= elapsed <= 1.5 + MARGIN
    assert silent_stripe.attempts == SILENT_ATTEMPTS_IN_BUDGET
    # Each attempt's connection is closed, none is left waiting on Stripe.
    assert eventually(lambda: len(silent_stripe.hung_up) == SILENT_ATTEMPTS_IN_BUDGET)


def test_api_checkout_with_a_silent_stripe_is_a_json_error_within_the_budget(
    real_site, silent_stripe
):
    client = real_site(silent_stripe.url, **SILENT).test_client()
    create_user(client.application, password=PASSWORD)
    response, elapsed = post_api_checkout(client)
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "payment_provider_unavailable"
    assert 1.5 - 0.1 <= elapsed <= 1.5 + MARGIN
    assert silent_stripe.attempts == SILENT_ATTEMPTS_IN_BUDGET


# Without a request there is no budget: 3 attempts of 0.3 s, backoffs of 0.5 s and 0.5-1 s.
BACKGROUND = {
    "STRIPE_TIMEOUT_SECONDS": 0.3,
    "STRIPE_MAX_NETWORK_RETRIES": 2,
    "STRIPE_REQUEST_BUDGET_SECONDS": 0.5,
}


def test_background_work_keeps_its_per_call_limits_not_the_request_budget(real_site, silent_stripe):
    site = real_site(silent_stripe.url, **BACKGROUND)
    started = time.monotonic()
    with site.app_context(), pytest.raises(ProviderUnavailable):
        get_gateway().retrieve_subscription("sub_x")
    elapsed = time.monotonic() - started
    assert silent_stripe.attempts == 3
    assert 0.9 + 1.0 - 0.1 <= elapsed <= 0.9 + 1.5 + MARGIN


def test_cli_commands_keep_their_per_call_limits_not_the_request_budget(real_site, silent_stripe):
    site = real_site(silent_stripe.url, **BACKGROUND)
    started = time.monotonic()
    result = site.test_cli_runner().invoke(args=["stripe", "check-catalog"])
    elapsed = time.monotonic() - started
    assert result.exit_code == 1 and "Stripe refused" in result.output
    assert silent_stripe.attempts == 3
    assert 0.9 + 1.0 - 0.1 <= elapsed <= 0.9 + 1.5 + MARGIN


# --- a Stripe that trickles ------------------------------------------------------------------

# A byte every 0.1 s never lets a 0.8 s read timeout fire: only a wall-clock limit stops it.
TRICKLE = {
    "STRIPE_TIMEOUT_SECONDS": 0.8,
    "STRIPE_MAX_NETWORK_RETRIES": 1,
    "STRIPE_REQUEST_BUDGET_SECONDS": 0.6,
}


def test_a_trickling_stripe_is_cut_at_the_deadline_and_its_connection_closed(
    real_site, trickling_stripe
):
    client = logged_in(real_site(trickling_stripe.url, **TRICKLE))
    response, elapsed = post_checkout(client)
    assert is_our_error_page(response), response.status_code
    assert 0.6 - 0.1 <= elapsed <= 0.6 + MARGIN
    # The one attempt got what was left of the budget, so there is no time for a retry.
    assert trickling_stripe.attempts == 1
    answered = time.monotonic()
    assert eventually(lambda: len(trickling_stripe.hung_up) == 1)
    assert trickling_stripe.hung_up[0] - answered < MARGIN


def test_without_a_deadline_a_trickle_is_cut_at_the_per_attempt_timeout(
    real_site, trickling_stripe
):
    site = real_site(trickling_stripe.url, **TRICKLE)
    started = time.monotonic()
    with site.app_context(), pytest.raises(ProviderUnavailable):
        get_gateway().retrieve_subscription("sub_x")
    elapsed = time.monotonic() - started
    assert trickling_stripe.attempts == 2  # 0.8 s, a 0.5 s backoff, 0.8 s
    assert 2.1 - 0.1 <= elapsed <= 2.1 + MARGIN
    assert eventually(lambda: len(trickling_stripe.hung_up) == 2)


# --- a Stripe that answers, slowly, call after call ------------------------------------------


@pytest.fixture
def slow_sandbox(app: Flask) -> Iterator[SlowSandbox]:
    with app.app_context():
        get_gateway().price_for("professional_monthly")  # the sandbox sells the catalog
    server = SlowSandbox(app, delay=0.4)
    yield server
    server.close()


def test_the_calls_of_one_page_share_one_budget_and_the_next_request_gets_a_new_one(
    real_site, slow_sandbox
):
    # Every call answers in 0.4 s, well inside its 1 s timeout; the page makes three.
    site = real_site(
        slow_sandbox.url,
        STRIPE_TIMEOUT_SECONDS=1.0,
        STRIPE_MAX_NETWORK_RETRIES=2,
        STRIPE_REQUEST_BUDGET_SECONDS=1.0,
    )
    client = logged_in(site)
    response, elapsed = post_checkout(client)
    # Customer (0.4 s), price (0.8 s), then the session gets the 0.2 s left and is cut.
    assert is_our_error_page(response), response.status_code
    assert 1.0 - 0.1 <= elapsed <= 1.0 + MARGIN
    assert slow_sandbox.calls == 3

    slow_sandbox.delay = 0.0
    retry, _ = post_checkout(client)
    # A fresh budget; the session create is sent again with the same idempotency key.
    assert retry.status_code == 303, retry.get_data(as_text=True)[:300]
    assert "/sandbox/checkout/cs_" in retry.headers["Location"]


# --- the in-process sandbox obeys the same deadline ------------------------------------------


@pytest.mark.parametrize("config_overrides", [{"SANDBOX_DELIVER_TO_SELF": False, **SILENT}])
def test_the_sandbox_timeout_fault_is_cut_at_the_deadline(app: Flask, client, auth, user_id):
    auth.login()
    faults = sandbox_of(app).faults
    faults.set_api(5, "timeout", delay=1.0)  # every attempt hangs past its 0.5 s timeout
    response, elapsed = post_checkout(client)
    assert is_our_error_page(response), response.status_code
    assert 1.5 - 0.1 <= elapsed <= 1.5 + MARGIN
    assert faults.status()["api"]["remaining"] == 5 - SILENT_ATTEMPTS_IN_BUDGET
    faults.clear()
    for thread in threading.enumerate():  # let the abandoned sandbox calls finish their sleep
        if thread.name == "stripe-attempt":
            thread.join(3)


# --- the deadline itself --------------------------------------------------------------------


def test_a_deadline_exists_only_inside_a_request_and_nesting_only_shortens_it(app: Flask):
    assert stripe_budget.remaining() is None
    with stripe_budget.deadline(10):
        left = stripe_budget.remaining()
        assert left is not None and 9 < left <= 10
        with stripe_budget.deadline(60):
            inner = stripe_budget.remaining()
            assert inner is not None and inner <= 10
        with stripe_budget.deadline(1):
            inner = stripe_budget.remaining()
            assert inner is not None and inner <= 1
    assert stripe_budget.remaining() is None

    seen: list[float | None] = []
    app.add_url_rule(
        "/_budget", "budget_probe", lambda: seen.append(stripe_budget.remaining()) or ""
    )
    app.test_client().get("/_budget")
    assert seen and seen[0] is not None
    assert app.config["STRIPE_REQUEST_BUDGET_SECONDS"] - 1 < seen[0]
    assert seen[0] <= app.config["STRIPE_REQUEST_BUDGET_SECONDS"]


def test_a_real_key_selects_the_bounded_transport(real_site):
    site = real_site("http://127.0.0.1:9", STRIPE_TIMEOUT_SECONDS=3.0)
    requestor = site.extensions["stripe_gateway"].client._requestor
    assert isinstance(requestor._client, BoundedRequestsClient)
    assert requestor._client._timeout == 3.0


# --- configuration --------------------------------------------------------------------------


def test_the_defaults_fit_well_inside_gunicorns_timeout():
    config = Config({})
    assert config.STRIPE_TIMEOUT_SECONDS == 8
    assert config.STRIPE_MAX_NETWORK_RETRIES == 2
    assert config.STRIPE_REQUEST_BUDGET_SECONDS == 15
    assert config.GUNICORN_TIMEOUT == 30
    config.validate()


@pytest.mark.parametrize(
    "environ",
    [
        {"STRIPE_REQUEST_BUDGET_SECONDS": "26"},
        {"STRIPE_REQUEST_BUDGET_SECONDS": "15", "GUNICORN_TIMEOUT": "18"},
        {"STRIPE_REQUEST_BUDGET_SECONDS": "0"},
    ],
)
def test_a_budget_too_close_to_gunicorns_timeout_refuses_to_start(environ):
    with pytest.raises(ConfigError, match="STRIPE_REQUEST_BUDGET_SECONDS"):
        create_app(Config(environ))


@pytest.mark.parametrize(
    "environ",
    [
        {"STRIPE_REQUEST_BUDGET_SECONDS": "25"},
        {"STRIPE_REQUEST_BUDGET_SECONDS": "50", "GUNICORN_TIMEOUT": "60"},
        {"STRIPE_REQUEST_BUDGET_SECONDS": "120", "GUNICORN_TIMEOUT": "0"},  # 0: never killed
    ],
)
def test_a_budget_that_leaves_room_is_accepted(environ):
    Config(environ).validate()


@pytest.mark.parametrize(
    ("environ", "complaint"),
    [
        ({"STRIPE_TIMEOUT_SECONDS": "0"}, "STRIPE_TIMEOUT_SECONDS"),
        ({"STRIPE_MAX_NETWORK_RETRIES": "-1"}, "STRIPE_MAX_NETWORK_RETRIES"),
    ],
)
def test_impossible_stripe_limits_refuse_to_start(environ, complaint):
    with pytest.raises(ConfigError, match=complaint):
        Config(environ).validate()
