"""Rendered pages kept per worker, and the CSRF token stamped into them per request.

A member's cached page is kept cut at its token fields, and also deflated once, with NUL bytes
standing in for each token (tokens all have one length) and a sync flush around each stand-in so
its compressed bytes can be cut out. A request splices its token in as a stored (uncompressed)
block of the same length: every back-reference of the compressed pieces keeps its distance, and
none can point into a stand-in, since a page holds no NUL byte to match it. The per-request gzip
of the whole page was, profiled, the largest cost of the logged-in pages after the framework.
"""

from __future__ import annotations

import re
import struct
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Response, current_app, g, request
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
    # For `stamped_response` (see the module's docstring): the parts as bytes, their deflated
    # pieces (none when the page cannot be spliced) and the token length they were made for.
    encoded: tuple[bytes, ...] = ()
    deflated: tuple[bytes, ...] = ()
    token_length: int = 0

    @classmethod
    def of(cls, parts: tuple[str, ...], token_length: int, level: int) -> StampablePage:
        encoded = tuple(part.encode() for part in parts)
        if any(b"\0" in part for part in encoded) or not 0 < token_length < 0xFFFF:
            return cls(parts, encoded)
        compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
        deflated = []
        for index, part in enumerate(encoded):
            if index:  # the token's stand-in: in the window, its compressed bytes dropped
                compressor.compress(b"\0" * token_length)
                compressor.flush(zlib.Z_SYNC_FLUSH)
            deflated.append(compressor.compress(part) + compressor.flush(zlib.Z_SYNC_FLUSH))
        return cls(parts, encoded, tuple(deflated), token_length)


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
    level = current_app.config["COMPRESS_LEVEL"]
    return StampablePage.of(_cut_at_token_fields(page), len(real_token.encode()), level)


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


def stamped_response(page: StampablePage) -> Response:
    """`stamp_csrf(page)` as a response, gzipped without compressing the page again when the
    visitor accepts gzip (Flask-Compress leaves an encoded response alone)."""
    token = generate_csrf().encode()
    if not request.accept_encodings["gzip"] or len(token) != page.token_length:
        # Not spliceable: Flask-Compress gzips the whole page, if the visitor accepts it.
        return Response(token.join(page.encoded), mimetype="text/html")
    response = Response(_gzip_spliced(page, token), mimetype="text/html")
    response.headers["Content-Encoding"] = "gzip"
    return response


# RFC 1952: magic, deflate, no flags, no mtime (the same bytes on every worker), no extra
# flags, unknown OS.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_LAST_BLOCK = b"\x03\x00"  # an empty final block with fixed codes: the deflate stream ends


def _gzip_spliced(page: StampablePage, token: bytes) -> bytes:
    # A stored block after a sync flush (byte-aligned): header byte 0 (not final, stored), then
    # LEN and its ones' complement, then the bytes themselves (RFC 1951, 3.2.4).
    stored = b"\x00" + struct.pack("<HH", len(token), len(token) ^ 0xFFFF) + token
    chunks, crc = [_GZIP_HEADER, page.deflated[0]], zlib.crc32(page.encoded[0])
    for encoded, deflated in zip(page.encoded[1:], page.deflated[1:], strict=True):
        chunks += [stored, deflated]
        crc = zlib.crc32(encoded, zlib.crc32(token, crc))
    size = sum(map(len, page.encoded)) + len(token) * (len(page.encoded) - 1)
    chunks += [_LAST_BLOCK, struct.pack("<II", crc, size & 0xFFFFFFFF)]
    return b"".join(chunks)
