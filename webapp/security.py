"""Security headers on every response, and the rules for where we may send people back to."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from flask import Flask, Response, abort, current_app, request
from flask_login import current_user
from werkzeug.exceptions import Forbidden

from webapp.config import DEV_JWT_SECRET, DEV_SECRET_KEY

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
    # A site configured as https sends HSTS on every answer, even when the proxy that ended
    # TLS forgot X-Forwarded-Proto (the request then looks like plain HTTP).
    if request.is_secure or current_app.config["PUBLIC_BASE_URL"].startswith("https://"):
        headers.setdefault("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
    if "Cache-Control" not in headers and _is_private():
        headers["Cache-Control"] = "no-store"
    return response


# Areas whose pages are someone's own (or carry their CSRF token): never kept by any cache.
PRIVATE_BLUEPRINTS = {"account", "admin", "auth", "checkout", "api_keys"}


def _is_private() -> bool:
    """True for answers meant for one person: their pages, or anything sent with a credential."""
    if request.blueprint in PRIVATE_BLUEPRINTS or "Authorization" in request.headers:
        return True
    # Only look up the user if this request already did, or carries a session to look in.
    return "session" in request.cookies and current_user.is_authenticated


_LOOPBACK_NAMES = {"localhost"}


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def refuse_development_secrets_off_loopback() -> None:
    """The development secrets are in this repository: with them, serve this machine only.

    Both ends must be loopback: the client's address, and the host it asked for (a reverse
    proxy on the same machine forwards from 127.0.0.1, but for a public name).
    """
    config = current_app.config
    if config["SECRET_KEY"] != DEV_SECRET_KEY and config["JWT_SECRET"] != DEV_JWT_SECRET:
        return
    hostname = urlsplit(f"//{request.host}").hostname
    if not (_is_loopback(request.remote_addr) and _is_loopback(hostname)):
        raise DevelopmentSecretsOffLoopback()


class DevelopmentSecretsOffLoopback(Forbidden):
    show_description = True  # the error page says why, and what to set
    description = (
        "This site runs on development secrets, which serve this machine only. Set SECRET_KEY "
        "and JWT_SECRET (and APP_ENV=production) to serve anyone else."
    )


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
    # First of all hooks: nothing else may run for a request this site must not serve.
    app.before_request_funcs.setdefault(None, []).insert(0, refuse_development_secrets_off_loopback)
    app.before_request(refuse_nul_in_forms)
    app.after_request(add_security_headers)
