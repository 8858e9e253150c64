"""Limits on attempts that cost us or help an attacker: password checks and sign-ups.

Counted here by hand rather than by Flask-Limiter's decorators because the key (the account an
attempt names) is only known once the form is read, and because each app keeps its own storage
(Flask-Limiter's is one per process): two apps share counts only when they share Redis, as the
workers of a production deployment must (`Config._shared_limit_problems`).

Each budget is a moving window ("10 per minute": at most 10 in any 60 s), spent atomically
*before* the attempt runs, so concurrent workers cannot overshoot it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from functools import cache

from flask import Flask, current_app, request
from limits import RateLimitItem, parse_many
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from werkzeug.exceptions import ServiceUnavailable, TooManyRequests

log = logging.getLogger(__name__)


class Throttle:
    """One app's limit storage and strategy."""

    def __init__(self, storage_uri: str, prefix: str, enabled: bool) -> None:
        storage = storage_from_string(storage_uri)
        if not isinstance(storage, Storage):  # an async+… URI: our limiter calls it in line
            raise ValueError(f"rate-limit storage must be synchronous, not {storage_uri!r}")
        self.storage: Storage = storage
        self.strategy = MovingWindowRateLimiter(self.storage)
        self.prefix = prefix or "throttle"
        self.enabled = enabled


def init_app(app: Flask) -> None:
    app.extensions["throttle"] = Throttle(
        app.config["RATELIMIT_STORAGE_URI"],
        app.config.get("RATELIMIT_KEY_PREFIX", ""),
        app.config["RATELIMIT_ENABLED"],
    )


@cache
def _items(limit: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(limit))


def spend(*budgets: tuple[str, str]) -> None:
    """Spend one attempt from each `(setting, key)` budget in turn; 429 at the first one spent.

    Budgets before the refusing one stay spent: the refused attempt was still made.
    """
    throttle: Throttle = current_app.extensions["throttle"]
    if not throttle.enabled:
        return
    try:
        for setting, key in budgets:
            for item in _items(current_app.config[setting]):
                if not throttle.strategy.hit(item, throttle.prefix, setting, key):
                    stats = throttle.strategy.get_window_stats(item, throttle.prefix, setting, key)
                    wait = max(1, int(stats.reset_time - time.time()) + 1)
                    raise TooManyRequests(retry_after=wait)
    except throttle.storage.base_exceptions as exc:
        # Without the counts no attempt can be allowed (guessing would go unlimited): refuse
        # with a page that says to come back, rather than a 500.
        log.error("limit storage unreachable, refusing the attempt: %s", exc)
        raise ServiceUnavailable(retry_after=30) from exc


def client_address() -> str:
    """The client's address: the socket's, or what the trusted proxies saw (ProxyFix)."""
    return request.remote_addr or "unknown"


def account_key(email: str) -> str:
    """A short, fixed-length key for an address as typed (known or not: no enumeration)."""
    normalised = email.strip().lower()
    return hashlib.sha256(normalised.encode("utf-8", "surrogatepass")).hexdigest()[:32]
