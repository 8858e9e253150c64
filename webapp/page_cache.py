"""Rendered pages kept per worker, and the CSRF token stamped into them per request."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import current_app, g
from flask_wtf.csrf import generate_csrf

from webapp.plan_copy import current_version
from webapp.security import CSRF_PLACEHOLDER

T = TypeVar("T")


class RenderedPageCache:
    """Rendered pricing pages, per copy version, cycle, highlighted plan and kind of visitor.

    Keyed by the published copy version, so a publish is served at once by every worker; entries
    of older versions are dropped on the first request that sees a new one.
    """

    def __init__(self) -> None:
        self._version: int | None = None
        self._pages: dict[tuple[str | None, ...], Any] = {}
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

    def get_or_render(
        self, version: int, key: tuple[str | None, ...], render: Callable[[], T]
    ) -> T:
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


# The value of a form's CSRF token field as rendered for the cache: `<input … name="csrf_token"
# … value="PLACEHOLDER">`, in either attribute order our templates use. Copy cannot produce an
# <input> tag (it is escaped, or sanitised Markdown), so only real form fields match.
_INPUT_TAG = re.compile(r"<input\b[^<>]*>")
_TOKEN_VALUE = f'value="{CSRF_PLACEHOLDER}"'


@dataclass(frozen=True)
class StampablePage:
    """A rendered page cut at each CSRF token field's value: `stamp_csrf` joins it with a token."""

    parts: tuple[str, ...]


def render_with_csrf_placeholder(render: Callable[[], str]) -> StampablePage:
    """`render()` with every form carrying the placeholder instead of this visitor's token."""
    # Flask-WTF keeps the request's token in `g.csrf_token`; forms rendered while it holds the
    # placeholder carry the placeholder.
    real_token = generate_csrf()
    g.csrf_token = CSRF_PLACEHOLDER
    try:
        page = render()
    finally:
        g.csrf_token = real_token
    return StampablePage(_cut_at_token_fields(page))


def _cut_at_token_fields(page: str) -> tuple[str, ...]:
    parts, start = [], 0
    for tag in _INPUT_TAG.finditer(page):
        text = tag.group()
        if 'name="csrf_token"' not in text or _TOKEN_VALUE not in text:
            continue
        value_at = tag.start() + text.index(_TOKEN_VALUE) + len('value="')
        parts.append(page[start:value_at])
        start = value_at + len(CSRF_PLACEHOLDER)
    parts.append(page[start:])
    return tuple(parts)


def stamp_csrf(page: StampablePage) -> str:
    """A cached page with this visitor's CSRF token in its forms' token fields, and only there:
    the placeholder anywhere else (in copy, say) stays as it is."""
    return generate_csrf().join(page.parts)
