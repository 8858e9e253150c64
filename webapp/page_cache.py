"""Rendered pages kept per worker, and the CSRF token stamped into them per request."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from flask import current_app, g
from flask_wtf.csrf import generate_csrf

from webapp.plan_copy import current_version


class RenderedPageCache:
    """Rendered pricing pages, per copy version, cycle, highlighted plan and kind of visitor.

    Keyed by the published copy version, so a publish is served at once by every worker; entries
    of older versions are dropped on the first request that sees a new one.
    """

    def __init__(self) -> None:
        self._version: int | None = None
        self._pages: dict[tuple[str | None, ...], str] = {}
        self._lock = threading.Lock()
        self._checked_at = float("-inf")  # when the database was last asked for the version

    def version(self, max_age: float, read: Callable[[], int]) -> int:
        """The published copy version, asking `read` (the database) at most every `max_age` s."""
        with self._lock:
            if self._version is not None and time.monotonic() - self._checked_at < max_age:
                return self._version
        version = read()
        with self._lock:
            if version != self._version:
                self._version, self._pages = version, {}
            self._checked_at = time.monotonic()
        return version

    def get_or_render(self, version: int, key: tuple[str | None, ...], render) -> str:
        with self._lock:
            if version != self._version:
                self._version, self._pages = version, {}
            page = self._pages.get(key)
        if page is None:
            page = render()
            with self._lock:
                if version == self._version:
                    self._pages[key] = page
        return page


def pricing_pages() -> RenderedPageCache:
    # One cache per app: copy versions are only comparable within one database.
    return current_app.extensions.setdefault("pricing_page_cache", RenderedPageCache())


def copy_version(exact: bool = False) -> int:
    """The published copy version, trusted for PRICING_CACHE_SECONDS unless `exact`."""
    max_age = 0 if exact else current_app.config["PRICING_CACHE_SECONDS"]
    return pricing_pages().version(max_age, current_version)


# Stands in for the visitor's CSRF token in cached pages; stamped with the real one per request.
CSRF_PLACEHOLDER = "csrf-placeholder-4e1d9c"


def render_with_csrf_placeholder(render: Callable[[], str]) -> str:
    """`render()` with every form carrying the placeholder instead of this visitor's token."""
    # Flask-WTF keeps the request's token in `g.csrf_token`; forms rendered while it holds the
    # placeholder carry the placeholder.
    real_token = generate_csrf()
    g.csrf_token = CSRF_PLACEHOLDER
    try:
        return render()
    finally:
        g.csrf_token = real_token


def stamp_csrf(page: str) -> str:
    """A cached page with this visitor's CSRF token in place of the placeholder."""
    return page.replace(CSRF_PLACEHOLDER, generate_csrf())
