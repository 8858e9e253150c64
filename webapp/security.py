"""Security headers on every response, and the rules for where we may send people back to."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from flask import Flask, Response, abort, request

# Stands in for the visitor's CSRF token in cached pages (webapp/page_cache.py), which stamps the
# real one into forms' token fields. Copy may not contain it (webapp/plan_copy.py).
CSRF_PLACEHOLDER = "csrf-placeholder-4e1d9c"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self' http: https:",  # Checkout and the portal live on Stripe's origin
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "object-src 'none'",
    ]
)


def add_security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
    return response


def is_safe_next(target: str | None) -> bool:
    """True only for a same-site path such as `/account?tab=1`.

    Refuses anything a browser could read as another origin: schemes, `//host`, backslashes
    (browsers treat `/\\host` as `//host`), control characters and encoded tricks.
    """
    if not target or len(target) > 2000:
        return False
    if not target.startswith("/") or target.startswith("//"):
        return False
    if any(ch in target for ch in "\\\r\n\t") or any(ord(ch) < 32 for ch in target):
        return False
    lowered = target.lower()
    if "%5c" in lowered or lowered.startswith(("/%2f", "/%09", "/%0a", "/%0d")):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


# A plain DNS name or IPv4 address with an optional port: no userinfo ("@"), no percent-encoding,
# no IPv6 literals, nothing a browser might normalise into another host than the one we checked.
_NETLOC = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?::[0-9]{1,5})?")
_DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_REDIRECT_URL_LENGTH = 2048


def _host_and_port(netloc: str, scheme: str) -> tuple[str, int] | None:
    """`host[:port]` as (host, effective port); None for anything else."""
    if not _NETLOC.fullmatch(netloc):
        return None
    host, _, port = netloc.partition(":")
    if port and not 0 < int(port) < 65536:
        return None
    return host, int(port) if port else _DEFAULT_PORTS[scheme]


def is_allowed_redirect_url(target: object, allowed_hosts: Iterable[str]) -> bool:
    """True only for an absolute http(s) URL whose host and port are in `allowed_hosts`.

    `allowed_hosts` holds `host` or `host:port` entries; an entry without a port allows the
    scheme's default port only. The check is deliberately narrow rather than clever: printable
    ASCII only (partners percent-encode paths), the scheme spelled `http://` or `https://`, and a
    netloc made only of host characters, so `//evil`, `/\\evil`, `https://site@evil`,
    `https://site.evil`, `https:evil`, encoded or padded hosts and other ports are all refused.
    """
    if not isinstance(target, str) or not 0 < len(target) <= MAX_REDIRECT_URL_LENGTH:
        return False
    if not target.isascii() or any(not 32 < ord(ch) < 127 for ch in target) or "\\" in target:
        return False
    scheme, separator, _ = target.partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in _DEFAULT_PORTS:
        return False
    wanted = _host_and_port(urlsplit(target).netloc.lower(), scheme)
    allowed = {_host_and_port(entry.strip().lower(), scheme) for entry in allowed_hosts}
    return wanted is not None and wanted in allowed


def refuse_nul_in_forms() -> None:
    """No form field may carry a NUL: no browser sends one, and PostgreSQL text refuses it."""
    form_types = ("application/x-www-form-urlencoded", "multipart/form-data")
    if request.mimetype not in form_types or request.path.startswith("/api/"):
        return  # bodies the views read themselves are left unread (the API answers 415)
    if any("\x00" in value for values in request.form.listvalues() for value in values):
        abort(400)


def init_app(app: Flask) -> None:
    app.before_request(refuse_nul_in_forms)
    app.after_request(add_security_headers)
