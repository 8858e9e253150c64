"""Security headers on every response, and the rules for where we may send people back to."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from typing import TypeGuard
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, request
from flask_login import current_user
from werkzeug.exceptions import Forbidden

from webapp.config import DEV_JWT_SECRET, DEV_SECRET_KEY
from webapp.errors import api_error, error_page, is_api_request

# Stands in for the visitor's CSRF token in cached pages (webapp/page_cache.py), which stamps the
# real one into forms' token fields. Copy may not contain it (webapp/plan_copy.py).
CSRF_PLACEHOLDER = "csrf-placeholder-4e1d9c"

# Where our own forms may send the browser, redirects after the POST included: Stripe's hosted
# Checkout and customer portal in real mode. The sandbox serves those pages on our own origin.
STRIPE_FORM_TARGETS = ("https://checkout.stripe.com", "https://billing.stripe.com")


def content_security_policy(form_targets: Iterable[str] = ()) -> str:
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            " ".join(["form-action 'self'", *form_targets]),
            "frame-ancestors 'none'",
            "base-uri 'self'",
            "object-src 'none'",
        ]
    )


def sandbox_form_targets(allowed_redirect_hosts: Iterable[str]) -> list[str]:
    """The sandbox's hosted checkout page stands in for Stripe's: after paying, its form
    redirects to the session's success URL, which may be on an API client's allowed host."""
    return [f"{scheme}://{host}" for host in allowed_redirect_hosts for scheme in ("https", "http")]


def add_security_headers(response: Response) -> Response:
    headers = response.headers
    policies = current_app.extensions["content_security_policy"]
    policy = policies["sandbox" if request.path.startswith("/sandbox/") else "site"]
    headers.setdefault("Content-Security-Policy", policy)
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


def is_safe_next(target: str | None) -> TypeGuard[str]:
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


# NUL (PostgreSQL text refuses it), lone surrogates (no encoding can store them) and the other C0
# control characters, which no person types. Bodies may still carry tab, CR and LF (text areas);
# URLs and headers may not (a header may carry a tab).
_BAD_IN_URLS = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
_BAD_IN_HEADERS = re.compile("[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")
_BAD_IN_BODIES = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
BAD_CHARACTERS_MESSAGE = (
    "The request contains characters we cannot accept (NUL bytes, control characters or "
    "unpaired surrogates)."
)


def _strings_in(value: object) -> Iterator[str]:
    """Every string in a parsed JSON document, keys included (iteratively: no depth limit)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


class _TooDeep(Exception):
    """A JSON body nested too deeply for the parser."""


def _json_body() -> object:
    """The JSON body, parsed once; None when there is none or it does not parse (the view
    answers that in its own words). Flask caches what it parsed, so a view reading `get_json`
    does not parse again."""
    try:
        return request.get_json(silent=True)
    except RecursionError:
        raise _TooDeep from None


def bad_characters_in_request() -> bool:
    """True when the path, query string, a header, a form field or a JSON string (key or value)
    carries a character that must not reach the database or the logs."""
    url_parts = [request.path, *_flatten(request.args.lists())]
    if any(_BAD_IN_URLS.search(part) for part in url_parts):
        return True
    if any(_BAD_IN_HEADERS.search(value) for value in request.headers.values()):
        return True
    body: list[str] = []
    if request.path.startswith("/webhooks/"):
        pass  # read raw by its view, and its signature is the gate
    elif request.is_json:
        body = list(_strings_in(_json_body()))
    elif request.mimetype in _FORM_TYPES and not is_api_request():
        body = _flatten(request.form.lists())  # the API answers 415 to a form, unread
    return any(_BAD_IN_BODIES.search(part) for part in body)


def _flatten(pairs: Iterable[tuple[str, list[str]]]) -> list[str]:
    return [text for name, values in pairs for text in (name, *values)]


def refuse_bad_characters() -> Response | tuple[str, int] | None:
    """Answer 400 before any view (or hook) can hand such a character to the database."""
    try:
        if not bad_characters_in_request():
            return None
    except _TooDeep:
        if is_api_request():
            return api_error(400, "invalid_json", "The request body is not valid JSON.")
        return error_page(400)
    if is_api_request():
        return api_error(400, "invalid_characters", BAD_CHARACTERS_MESSAGE)
    return error_page(400, BAD_CHARACTERS_MESSAGE)


def init_app(app: Flask) -> None:
    real_stripe = "stripe_sandbox" not in app.extensions
    allowed_hosts = app.config.get("ALLOWED_REDIRECT_HOSTS") or []
    app.extensions["content_security_policy"] = {
        "site": content_security_policy(STRIPE_FORM_TARGETS if real_stripe else ()),
        "sandbox": content_security_policy(sandbox_form_targets(allowed_hosts)),
    }
    # First of all the hooks: CSRF, the limiter and the login manager read the request too.
    app.before_request_funcs.setdefault(None, []).insert(0, refuse_bad_characters)
    # And before even that: nothing may run for a request this site must not serve.
    app.before_request_funcs[None].insert(0, refuse_development_secrets_off_loopback)
    app.after_request(add_security_headers)
