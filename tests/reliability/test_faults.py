"""Faults: Stripe failing or hanging, the database going away, a crash half-way, a restart.

Stripe faults are the sandbox's own fault switches; database faults are a real TCP proxy in front
of PostgreSQL that goes down or cuts a connection in the middle of a transaction.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from tests.billing_helpers import pay, post_event, sandbox_events, start_checkout, subscribe
from tests.conftest import CSRF_RE, create_user, csrf_token, make_app, sql
from webapp.extensions import db
from webapp.sandbox.faults import wait_for_hung_calls

FAULT_MODES = ["500", "timeout"]


@pytest.fixture
def config_overrides():
    # One attempt per call and a client timeout of five seconds, not the default eight: a hung
    # Stripe costs little, yet a healthy call on a loaded CI machine has room (two seconds once
    # timed out on a test's first, unfaulted call).
    return {
        "SANDBOX_DELIVER_TO_SELF": False,
        "STRIPE_MAX_NETWORK_RETRIES": 0,
        "STRIPE_TIMEOUT_SECONDS": 5.0,
    }


@pytest.fixture
def logged_in(app, client, auth, user_id):
    auth.login()
    return user_id


@pytest.fixture(autouse=True)
def _no_hung_call_left_behind():
    """A call hung on a "timeout" fault outlives the request that gave up on it; the next test
    starts only once it has ended (one left hanging made the next test's first call time out)."""
    yield
    assert wait_for_hung_calls(timeout=60), "a sandbox call still hangs on a fault"


def arm(app, figures, mode: str, count: int = 1, path: str | None = None) -> None:
    faults = app.extensions["stripe_sandbox"].faults
    faults.set_api(count, mode, 30.0, path)  # hangs past the timeout, until `disarm`
    figures.add("faults injected", count)


def disarm(app) -> None:
    app.extensions["stripe_sandbox"].faults.clear()


# --- Stripe failing or hanging ---------------------------------------------------------------


@pytest.mark.parametrize("mode", FAULT_MODES)
def test_checkout_fault_after_the_customer_exists_leaves_the_old_session_alone(
    app, client, logged_in, figures, mode
):
    first = start_checkout(client, "starter")
    assert first.status_code == 303
    arm(app, figures, mode)  # the call that expires the starter session fails
    failed = start_checkout(client, "business")
    figures.count_5xx([failed.status_code])
    assert failed.status_code == 502
    assert "Payments are unavailable right now" in failed.get_data(as_text=True)
    assert sql(app, "select plan_id, status from checkout_sessions") == [("starter", "open")]
    disarm(app)
    retry = start_checkout(client, "business")
    assert retry.status_code == 303
    rows = sql(app, "select plan_id, status from checkout_sessions order by id")
    assert rows == [("starter", "expired"), ("business", "open")]
    assert sql(app, "select count(distinct stripe_customer_id) from users") == [(1,)]


@pytest.mark.parametrize("mode", FAULT_MODES)
def test_api_checkout_fault_is_a_json_error_and_the_retry_works(
    app, client, user_id, figures, mode
):
    token = client.post(
        "/api/v1/auth/token", json={"email": "ada@example.com", "password": "correct horse battery"}
    ).get_json()["accessToken"]
    headers = {"Authorization": f"Bearer {token}"}
    arm(app, figures, mode)
    failed = client.post(
        "/api/v1/subscriptions/checkout", json={"planId": "starter"}, headers=headers
    )
    figures.count_5xx([failed.status_code])
    assert failed.status_code == 503
    assert failed.get_json()["error"]["code"] == "payment_provider_unavailable"
    assert sql(app, "select count(*) from checkout_sessions") == [(0,)]
    disarm(app)
    retry = client.post(
        "/api/v1/subscriptions/checkout", json={"planId": "starter"}, headers=headers
    )
    assert retry.status_code == 200, retry.get_json()
    assert sql(app, "select count(*) from checkout_sessions") == [(1,)]


@pytest.mark.parametrize("mode", FAULT_MODES)
def test_portal_fault_is_a_friendly_page_and_the_retry_works(app, client, logged_in, figures, mode):
    app.config["SANDBOX_DELIVER_TO_SELF"] = True
    subscribe(client)
    # Only the portal call: a webhook the delivery worker retries meanwhile must not take it.
    arm(app, figures, mode, path="/v1/billing_portal/sessions")
    token = csrf_token(client, "/account")
    failed = client.post("/billing/portal", data={"csrf_token": token})
    figures.count_5xx([failed.status_code])
    assert failed.status_code == 502
    assert "Payments are unavailable right now" in failed.get_data(as_text=True)
    disarm(app)
    retry = client.post("/billing/portal", data={"csrf_token": token})
    assert retry.status_code == 303 and "/sandbox/portal/bps_" in retry.headers["Location"]


@pytest.mark.parametrize("mode", FAULT_MODES)
def test_success_page_fault_then_reload_fulfils_once(app, client, logged_in, figures, mode):
    session_id = subscribe(client)  # paid; no webhook delivered, so the page must fulfil
    arm(app, figures, mode)
    failed = client.get(f"/checkout/success?session_id={session_id}")
    figures.count_5xx([failed.status_code])
    assert failed.status_code == 502
    assert sql(app, "select count(*) from subscriptions") == [(0,)]
    assert sql(app, "select count(*) from credit_entries") == [(0,)]
    disarm(app)
    for _ in range(2):
        assert client.get(f"/checkout/success?session_id={session_id}").status_code == 200
    [(grants,)] = sql(app, "select count(*) from credit_entries")
    figures.add("effects doubled", max(0, grants - 1))
    figures.add("rows lost", max(0, 1 - grants))
    assert grants == 1


# --- The database going away -----------------------------------------------------------------


class DatabaseProxy:
    """A TCP proxy to PostgreSQL that can refuse connections or cut one on a given query."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.cut_on: bytes | None = None
        self.cuts = 0
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            server = socket.create_connection(self.upstream)
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_app: bool) -> None:
        try:
            while data := source.recv(65536):
                if from_app and self.cut_on and self.cut_on in data:
                    self.cut_on = None
                    self.cuts += 1
                    break  # the query never reaches the server: the connection just dies
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            _close(sock)

    def down(self) -> None:
        self.up = False
        with self._lock:
            for sock in self._sockets:
                _close(sock)
            self._sockets.clear()

    def close(self) -> None:
        self.down()
        self.listener.close()


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@pytest.fixture
def proxied_app(app, database_url) -> Iterator:
    """A second app (another worker of the site) reaching the same database through a proxy."""
    url = make_url(database_url)
    proxy = DatabaseProxy(url.host or "127.0.0.1", url.port or 5432)
    proxied = url.set(host="127.0.0.1", port=proxy.port, query={"sslmode": "disable"})
    other = make_app(
        proxied.render_as_string(hide_password=False), **{"SANDBOX_DELIVER_TO_SELF": False}
    )
    other.extensions["database_proxy"] = proxy
    yield other
    with other.app_context():
        db.session.remove()
        db.engine.dispose()
    proxy.close()


@pytest.fixture
def paid(app, client, logged_in):
    """Ada paid for Professional monthly; no event delivered yet."""
    started = start_checkout(client)
    pay(client, started.headers["Location"])


@pytest.mark.postgres
def test_database_down_during_a_webhook_is_a_503_and_the_retry_applies_it(
    app, paid, proxied_app, figures
):
    [invoice_paid] = sandbox_events(app, ("invoice.paid",))
    proxy = proxied_app.extensions["database_proxy"]
    assert post_event(proxied_app.test_client(), {**invoice_paid, "id": "evt_warmup"}).status_code
    proxy.down()
    figures.add("faults injected")
    statuses = [post_event(proxied_app.test_client(), invoice_paid).status_code for _ in range(3)]
    figures.add("events delivered", 3)
    figures.count_5xx(statuses)
    assert statuses == [503, 503, 503]
    assert sql(
        app, "select count(*) from webhook_events where id = :id", id=invoice_paid["id"]
    ) == [(0,)]
    proxy.up = True  # the database is back; Stripe retries
    retry = post_event(proxied_app.test_client(), invoice_paid)
    figures.add("events delivered")
    assert retry.status_code == 200 and retry.get_json()["message"] in ("processed", "duplicate")
    [(grants,)] = sql(app, "select count(*) from credit_entries")
    figures.add("rows lost", max(0, 1 - grants))
    figures.add("effects doubled", max(0, grants - 1))
    assert grants == 1


@pytest.mark.postgres
def test_connection_cut_half_way_through_an_event_rolls_everything_back(
    app, paid, proxied_app, figures
):
    [invoice_paid] = sandbox_events(app, ("invoice.paid",))
    proxy = proxied_app.extensions["database_proxy"]
    # The ledger row and the subscription are written; the connection dies on the grant.
    proxy.cut_on = b"INSERT INTO credit_entries"
    figures.add("faults injected")
    crashed = post_event(proxied_app.test_client(), invoice_paid)
    figures.add("events delivered")
    figures.count_5xx([crashed.status_code])
    assert proxy.cuts == 1
    assert crashed.status_code in (500, 503)
    assert sql(app, "select count(*) from subscriptions") == [(0,)]
    assert sql(app, "select count(*) from credit_entries") == [(0,)]
    assert sql(app, "select status from webhook_events") in ([], [("failed",)])

    retry = post_event(proxied_app.test_client(), invoice_paid)
    figures.add("events delivered")
    assert retry.status_code == 200 and retry.get_json()["message"] == "processed"
    [(grants,)] = sql(app, "select count(*) from credit_entries")
    figures.add("rows lost", max(0, 1 - grants))
    assert grants == 1
    assert sql(app, "select count(*) from subscriptions") == [(1,)]


# --- A restart in the middle of deliveries ---------------------------------------------------


class LiveSite:
    """The site served by a real HTTP server in a thread, as one gunicorn worker would be."""

    def __init__(self, database_url: str) -> None:
        self.app = make_app(database_url, SANDBOX_WEBHOOK_DELIVERY="thread")
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.app.config["PUBLIC_BASE_URL"] = self.url
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """The process goes away: no more requests, no more delivery worker, no connections."""
        self.server.shutdown()
        self.thread.join(10)
        self.app.extensions["stripe_sandbox"].webhooks.stop_worker()
        with self.app.app_context():
            db.session.remove()
            db.engine.dispose()


def _token(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no CSRF token"
    return match.group(1) or match.group(2)


def subscribe_over_http(site: LiveSite, email: str) -> None:
    browser = requests.Session()
    page = browser.get(f"{site.url}/login", timeout=10).text
    data = {"email": email, "password": "correct horse battery", "csrf_token": _token(page)}
    assert browser.post(f"{site.url}/login", data=data, timeout=10).ok
    token = _token(browser.get(f"{site.url}/pricing", timeout=10).text)
    started = browser.post(
        f"{site.url}/checkout",
        data={"plan": "professional", "cycle": "monthly", "csrf_token": token},
        allow_redirects=False,
        timeout=10,
    )
    checkout_path = urlsplit(started.headers["Location"]).path
    token = _token(browser.get(site.url + checkout_path, timeout=10).text)
    card = {"card_number": "4242 4242 4242 4242", "expiry": "12 / 34", "cvc": "123"}
    paid = browser.post(
        site.url + checkout_path,
        data={"csrf_token": token, **card},
        allow_redirects=False,
        timeout=10,
    )
    assert paid.status_code == 303, paid.text[:300]


def test_restart_in_the_middle_of_deliveries_loses_nothing(app, database_url, figures):
    emails = [f"user{n}@example.com" for n in range(3)]
    for email in emails:
        create_user(app, email=email)
    first = LiveSite(database_url)
    # Every event of these payments is due a few seconds from now: still pending at the stop.
    first.app.extensions["stripe_sandbox"].faults.set_webhooks("late", count=100, delay=5)
    started = time.monotonic()
    for email in emails:
        subscribe_over_http(first, email)
    first.stop()
    assert time.monotonic() - started < 5, "too slow to stop before the first delivery was due"
    pending = sql(app, "select count(*) from sandbox_deliveries where status = 'pending'")[0][0]
    assert pending > 0
    assert sql(app, "select count(*) from webhook_events") == [(0,)]

    second = LiveSite(database_url)
    try:
        assert requests.get(f"{second.url}/healthz", timeout=10).ok  # its worker starts
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            left = sql(app, "select count(*) from sandbox_deliveries where status = 'pending'")
            if left == [(0,)]:
                break
            time.sleep(0.25)
    finally:
        second.stop()
    figures.add("events delivered", pending)
    events = {e["id"] for e in sandbox_events(app)}
    done = {
        row[0]
        for row in sql(
            app, "select id from webhook_events where status in ('processed', 'ignored')"
        )
    }
    figures.add("rows lost", len(events - done))
    assert events == done
    credits = sql(app, "select user_id, sum(amount) from credit_entries group by user_id")
    assert sorted(amount for _user, amount in credits) == [3000, 3000, 3000]
    assert sql(app, "select count(*) from subscriptions where status = 'active'") == [(3,)]
