"""How long one web request may spend on Stripe, all calls and retries together.

gunicorn kills a sync worker whose request runs past `GUNICORN_TIMEOUT`, and the person gets a
dropped connection instead of our error page. A page may call Stripe several times in a row
(checkout: customer, price, session), so per-call limits alone cannot keep it under that line:
each web request gets one deadline, `STRIPE_REQUEST_BUDGET_SECONDS` from its start, and the
gateway's transports cut every attempt, retry and backoff sleep to it. Outside a web request (CLI
commands, background work) there is no deadline; only the per-call limits apply.

This module knows nothing of Stripe; `webapp.stripe_gateway` asks it how much time is left.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from flask import Flask

# A context variable rather than a thread-local: the gateway runs each attempt in a helper thread
# that carries a copy of the caller's context, so it sees the same deadline.
_deadline: ContextVar[float | None] = ContextVar("stripe_deadline", default=None)


def remaining() -> float | None:
    """Seconds left for Stripe in the current web request; None outside one (no deadline)."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Give the Stripe calls made inside at most `seconds`, in all.

    Nested inside another deadline it can only shorten it: a request served in-process from
    within another (the sandbox delivering a webhook to this site) gets no more time than the
    request that is waiting on it.
    """
    ends = time.monotonic() + seconds
    outer = _deadline.get()
    token = _deadline.set(ends if outer is None else min(outer, ends))
    try:
        yield
    finally:
        _deadline.reset(token)


class RequestDeadline:
    """WSGI middleware: every request through the app runs inside its own `deadline`.

    Middleware rather than a `before_request` hook, so the clock starts before any other hook
    and still runs during teardown (where the sandbox delivers webhooks in "sync" mode).
    """

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]], seconds: float) -> None:
        self.wsgi_app = wsgi_app
        self.seconds = seconds

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]):
        with deadline(self.seconds):
            return self.wsgi_app(environ, start_response)


def init_app(app: Flask) -> None:
    """Put every web request of `app` under `STRIPE_REQUEST_BUDGET_SECONDS`."""
    app.wsgi_app = RequestDeadline(  # type: ignore[method-assign]
        app.wsgi_app, float(app.config["STRIPE_REQUEST_BUDGET_SECONDS"])
    )
