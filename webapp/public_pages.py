"""Pages a CDN may serve: the pricing page and the legal pages, for visitors without a cookie.

A request with no session cookie, no remember cookie and no Authorization header cannot be about
anyone, so its answer is the same for every such visitor and a shared cache may keep it:

- `Cache-Control: public, max-age=PUBLIC_PAGE_MAX_AGE, stale-while-revalidate=…`;
- a weak `ETag` of the page's bytes, prefixed with the published copy version: it moves with a
  publish, the catalog (prices, credits), the templates and the stylesheet's fingerprint, and is
  the same on every worker and host that serves the same page;
- 304 to a matching `If-None-Match`, answered from the worker's cache of rendered pages (the same
  one the pricing page always used, keyed by the copy version), without rendering;
- no `Vary: Cookie` and no `Set-Cookie`: `PublicAwareSessionInterface` neither saves the session
  nor varies on it for a public answer, and turns the answer private if anything wrote to the
  session while making it (a per-visitor value must never reach a shared cache).

Everything else (a member, or a visitor whose browser holds a session cookie, say after a visit
to /login) gets the private variant: `Cache-Control: private, no-store` and `Vary: Cookie`.
README "Deploying" says how to set up the CDN: cache these pages only for requests without our
cookies, so that a member's request never gets, nor feeds, the public copy.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from flask import Flask, Response, current_app, g, request
from flask.sessions import SecureCookieSessionInterface, SessionMixin
from flask_login import user_logged_in

from webapp.page_cache import copy_version, pricing_pages


@dataclass(frozen=True)
class PublicPage:
    """A rendered public page, gzipped once and with its validator, as the cache keeps it."""

    body: bytes
    gzipped: bytes
    etag: str  # weak: the gzipped and the plain bytes are the same page

    @classmethod
    def of(cls, html: str, copy_version: int) -> PublicPage:
        body = html.encode()
        digest = hashlib.sha256(body).hexdigest()[:20]
        # mtime=0: the same page gzips to the same bytes on every worker and host.
        gzipped = gzip.compress(body, current_app.config["COMPRESS_LEVEL"], mtime=0)
        return cls(body, gzipped, f"c{copy_version}-{digest}")


def is_anonymous_request() -> bool:
    """True when the request carries nothing that could name a visitor: no session or
    remember cookie, no Authorization header. Other cookies (analytics, say) do not count."""
    config, cookies = current_app.config, request.cookies
    return (
        config["SESSION_COOKIE_NAME"] not in cookies
        and config.get("REMEMBER_COOKIE_NAME", "remember_token") not in cookies
        and "Authorization" not in request.headers
    )


def serve_public(key: tuple[str | None, ...], render: Callable[[], str]) -> Response:
    """The cached public page under `key` (rendered by `render` once per copy version and
    worker), or 304 when the visitor's copy is current."""
    version = copy_version()
    page = pricing_pages().get_or_render(
        version, ("public", *key), lambda: PublicPage.of(render(), version)
    )
    if request.if_none_match.contains_weak(page.etag):
        response = Response(status=304)
    elif request.accept_encodings["gzip"]:
        response = Response(page.gzipped, mimetype="text/html")
        # Already compressed: Flask-Compress leaves a response with a Content-Encoding alone.
        response.headers["Content-Encoding"] = "gzip"
    else:
        response = Response(page.body, mimetype="text/html")
    response.set_etag(page.etag, weak=True)
    mark_public(response)
    return response


def mark_public(response: Response) -> None:
    config = current_app.config
    # Written as a string: werkzeug's cache_control object parses the header at each access,
    # which cost the 304 a tenth of its time (profiled).
    response.headers["Cache-Control"] = (
        f"public, max-age={config['PUBLIC_PAGE_MAX_AGE']}, "
        f"stale-while-revalidate={config['PUBLIC_PAGE_STALE_SECONDS']}"
    )
    response.headers["Vary"] = "Accept-Encoding"


def is_public(response: Response) -> bool:
    directives = response.headers.get("Cache-Control", "").split(",")
    return any(directive.strip() == "public" for directive in directives)


def private_response(body: str | Response) -> Response:
    """The variant for a visitor with a session: never kept by a shared cache or the browser."""
    response = body if isinstance(body, Response) else Response(body, mimetype="text/html")
    response.headers["Cache-Control"] = "private, no-store"
    response.vary.add("Cookie")
    return response


def public_when_anonymous(
    key: Callable[[], tuple[str | None, ...]],
) -> Callable[[Callable[..., str]], Callable[..., Response]]:
    """Serve a view's page from the public cache to anonymous visitors (under `key()`, which
    must name every input the page reads from the request), privately to everyone else."""

    def decorator(view: Callable[..., str]) -> Callable[..., Response]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            if is_anonymous_request():
                return serve_public(key(), lambda: view(*args, **kwargs))
            return private_response(view(*args, **kwargs))

        return wrapper

    return decorator


class PublicAwareSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, except that a public answer neither sets the session
    cookie nor says `Vary: Cookie` (it does not depend on one: see `is_anonymous_request`)."""

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        public = is_public(response)
        if public and session.modified and session:
            # Something stored per-visitor state (a CSRF token, a flash) while making a public
            # answer: the answer may carry it, so it must not be shared after all.
            app.logger.warning("public answer to %s wrote the session: sent private", request.path)
            response.headers["Cache-Control"] = "private, no-store"
            response.headers.pop("ETag", None)
            public = False
        if public:
            return
        super().save_session(app, session, response)


def clear_browser_cache() -> None:
    """Send `Clear-Site-Data: "cache"` with this answer (a log-in does; so does every sign-up
    answer, so that a taken address and a new one get the same headers)."""
    g.clear_cached_pages = True


def _forget_cached_pages(_app: Flask, **_extra: Any) -> None:
    clear_browser_cache()


def _clear_browser_cache_after_log_in(response: Response) -> Response:
    # The browser may hold the public pricing page (max-age) and, with no Vary: Cookie, would
    # show it to the member they just became; Clear-Site-Data drops it (and nothing else of
    # ours is worth keeping: private pages are never stored, static files refetch once).
    if g.get("clear_cached_pages"):
        response.headers["Clear-Site-Data"] = '"cache"'
    return response


def init_app(app: Flask) -> None:
    app.session_interface = PublicAwareSessionInterface()
    user_logged_in.connect(_forget_cached_pages, app)
    app.after_request(_clear_browser_cache_after_log_in)
