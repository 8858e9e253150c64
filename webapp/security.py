"""Security headers on every response, and the same-site rule for `next` redirects."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, request

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


def init_app(app: Flask) -> None:
    app.after_request(add_security_headers)
