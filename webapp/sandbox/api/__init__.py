"""The sandbox's HTTP API: Stripe's `/v1` endpoints as a plain WSGI app.

It is plain WSGI rather than Flask on purpose: called in-process from inside one of the site's
requests, `flask.request` still names the site's request (used for the hosted pages' public URL
and for deferring synchronous webhook delivery to the end of that request).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

from flask import has_request_context
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

# Each resource module registers its routes on import.
from webapp.sandbox.api import (  # noqa: F401
    catalog,
    checkout,
    credit_notes,
    customers,
    discounts,
    events,
    invoices,
    payments,
    portal,
    schedules,
    subscriptions,
)
from webapp.sandbox.api.routing import ROUTES, Call, expand
from webapp.sandbox.models import SandboxIdempotencyKey
from webapp.sandbox.store import Store, new_id, public_view
from webapp.sandbox.wire import StripeAPIError, decode_params, dumps, validate

if TYPE_CHECKING:
    from webapp.sandbox import Sandbox

log = logging.getLogger(__name__)

DEFAULT_PUBLIC_URL = "http://localhost:5000/"


@cache
def _url_map() -> Map:
    """Stripe's routes, compiled once a process: they are the same for every app, and compiling
    them took 60 ms of each app's creation (a Map is shared safely: each request binds its own
    adapter)."""
    return Map(
        [
            Rule(rule, methods=[method], endpoint=index)
            for index, (rule, method, _schema, _handler) in enumerate(ROUTES)
        ]
    )


class SandboxAPI:
    """Stripe's HTTP API over the sandbox store."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.url_map = _url_map()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]):
        if self.sandbox.latency_seconds:
            # The network and Stripe's own work, for every call (SANDBOX_LATENCY_MS).
            time.sleep(self.sandbox.latency_seconds)
        request = Request(environ)
        request_id = new_id("req_", 14)
        try:
            status, body, replayed = self.handle(request, request_id)
        except StripeAPIError as exc:
            status, body, replayed = exc.status, json.dumps(exc.envelope()), False
        response = Response(body, status=status, content_type="application/json")
        response.headers["Request-Id"] = request_id
        response.headers["Stripe-Version"] = request.headers.get(
            "Stripe-Version", self.sandbox.api_version
        )
        if replayed:
            response.headers["Idempotent-Replayed"] = "true"
        if status >= 400:
            log.info("sandbox %s %s -> %s", request.method, request.path, status)
        return response(environ, start_response)

    def handle(self, request: Request, request_id: str) -> tuple[int, str, bool]:
        self._authenticate(request)
        self.sandbox.faults.before_api_call(request.path)
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            index, ids = adapter.match()
        except NotFound:
            raise StripeAPIError(
                404, f"Unrecognized request URL ({request.method}: {request.path}).", code=None
            ) from None
        except MethodNotAllowed:
            raise StripeAPIError(
                404, f"Unrecognized request URL ({request.method}: {request.path}).", code=None
            ) from None
        _rule, _method, schema, handler = ROUTES[index]
        pairs = list(request.args.items(multi=True))
        if request.method in ("POST", "DELETE"):
            pairs += list(request.form.items(multi=True))
        params = decode_params(pairs)
        validate(params, schema)
        idempotency_key = (
            request.headers.get("Idempotency-Key") if request.method == "POST" else None
        )
        with self.sandbox.store() as store:
            store.request_info = {"id": request_id, "idempotency_key": idempotency_key}
            claim = None
            if idempotency_key:
                stored = self._replay(store, request, idempotency_key, params)
                if stored is not None:
                    return stored[0], stored[1], True
                claim = self._claim(store, request, idempotency_key, params)
            call = Call(store, params, self._public_base(request), request.path)
            store.public_base = call.public_base
            try:
                result = store.render(handler(call, **ids))
            except StripeAPIError as exc:
                if exc.keep_changes and claim is not None:
                    # Stripe replays a stored error for the same key, too.
                    claim.status, claim.body = exc.status, json.dumps(exc.envelope())
                raise
            for path in params.get("expand") or []:
                expand(store, result, path.split("."), path)
            body = dumps(public_view(result))
            if claim is not None:
                claim.status, claim.body = 200, body
        return 200, body, False

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("Authorization", "")
        key = header[7:] if header.startswith("Bearer ") else ""
        if not key and request.authorization and request.authorization.type == "basic":
            key = request.authorization.username or ""
        if not key.startswith(("sk_test_", "rk_test_")):
            raise StripeAPIError(
                401,
                "Invalid API Key provided: the sandbox accepts test keys (sk_test_…) only."
                if key
                else "You did not provide an API key.",
                type="invalid_request_error",
            )

    def _public_base(self, request: Request) -> str:
        if self.sandbox.public_url:
            return self.sandbox.public_url
        # In-process, the page the browser will visit lives on the site that made the call, at
        # its public origin (never the Host header of the site's request: anyone can forge it).
        if has_request_context():
            return self.sandbox.app.config["PUBLIC_BASE_URL"] + "/"
        # Called in-process outside any request (CLI, tests): assume the development server.
        return DEFAULT_PUBLIC_URL if request.host.endswith(".invalid") else request.host_url

    @staticmethod
    def _fingerprint(request: Request, params: dict[str, Any]) -> str:
        raw = json.dumps([request.method, request.path, params], sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()

    def _replay(self, store: Store, request: Request, key: str, params: dict[str, Any]):
        row = store.session.get(SandboxIdempotencyKey, self._key(request, key))
        if row is None:
            return None
        if row.request_fingerprint != self._fingerprint(request, params):
            raise StripeAPIError(
                400,
                "Keys for idempotent requests can only be used with the same parameters they were "
                f"first used with. Try using a key other than '{key}' if you meant to execute a "
                "different request.",
                type="idempotency_error",
            )
        return row.status, row.body

    def _claim(self, store, request, key, params) -> SandboxIdempotencyKey:
        """Take the key before doing the work, as Stripe does.

        A concurrent request with the same key waits on the key's row until this one commits,
        then gets a 409 (which the SDK retries, and the retry replays the stored response)
        instead of repeating the work.
        """
        row = SandboxIdempotencyKey(
            key=self._key(request, key),
            request_fingerprint=self._fingerprint(request, params),
            status=0,
            body="",
            created=int(time.time()),
        )
        store.session.add(row)
        try:
            store.session.flush()
        except IntegrityError:
            raise StripeAPIError(
                409,
                "There is currently another in-progress request using this Idempotent Key.",
                type="idempotency_error",
            ) from None
        return row

    @staticmethod
    def _key(request: Request, key: str) -> str:
        # Keys are per API key, as Stripe scopes them per account.
        api_key = request.headers.get("Authorization", "")[-12:]
        return f"{api_key}:{key}"[:400]
