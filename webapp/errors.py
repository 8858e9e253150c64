"""Turning failures into responses at the edge: HTML pages for people, JSON under /api/."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Flask,
    Response,
    current_app,
    jsonify,
    make_response,
    render_template,
    request,
)
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError, SecurityError

from webapp.extensions import db

# Stable codes for the API's error envelope, by HTTP status.
HTTP_ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal_error",
    502: "payment_provider_unavailable",
    503: "service_unavailable",
}
PAGES = {400, 403, 404, 405, 429, 500, 502, 503}


# Paths that speak JSON (the API, the webhook endpoint, the sandbox's control endpoints): their
# errors use API.md's envelope, never the HTML pages.
JSON_PATHS = ("/api/", "/webhooks/", "/sandbox/control/")


def is_api_request() -> bool:
    return request.path == "/api" or request.path.startswith(JSON_PATHS)


def api_error(status: int, code: str, message: str) -> Response:
    """API.md's error envelope: `{"error": {"code", "message"}}`."""
    response = jsonify(error={"code": code, "message": message})
    response.status_code = status
    return response


def error_page(status: int, message: str | None = None) -> tuple[str, int]:
    template = f"errors/{status if status in PAGES else 400}.html"
    return render_template(template, status=status, message=message), status


def handle_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    if isinstance(exc, SecurityError):
        # A Host outside TRUSTED_HOSTS: no URL can be built for this request, so no page either.
        return Response(
            "400 Bad Request: this site does not answer for that host.\n",
            400,
            mimetype="text/plain",
        )
    if is_api_request():
        response = api_error(
            status, HTTP_ERROR_CODES.get(status, "error"), _public_description(exc)
        )
    elif isinstance(exc, CSRFError) and request.method == "POST":
        response = make_response(csrf_retry_page(), 400)
    else:
        shown = isinstance(exc, CSRFError) or getattr(exc, "show_description", False)
        message = exc.description if shown else None
        response = make_response(*error_page(status, message))
    for name, value in exc.get_headers():
        if name in ("Allow", "Retry-After"):
            response.headers[name] = value
    return response


# Never written back into a page: the stale token is replaced, and secrets are typed again.
SECRET_FIELD_HINTS = ("password", "card_number", "cvc")


def csrf_retry_page() -> str:
    """A form sent with a missing or stale CSRF token: the page was open too long (or the session
    changed in another tab). Nothing was done; what was typed is offered back with a fresh token.

    Only to our own pages: a form posted from another site gets the message without its values,
    or a forged request would become a one-click "Send again" with a valid token."""
    same_site = _from_our_site()
    kept: list[tuple[str, str]] = []
    secrets: list[str] = []
    if same_site:
        for name, value in request.form.items(multi=True):
            if name == "csrf_token":
                continue
            if any(hint in name.lower() for hint in SECRET_FIELD_HINTS):
                if name not in secrets:
                    secrets.append(name)
            else:
                kept.append((name, value))
    back = request.referrer if same_site and _is_ours(request.referrer) else None
    return render_template(
        "errors/csrf.html",
        status=400,
        same_site=same_site,
        action=request.full_path.rstrip("?"),
        kept=kept,
        secrets=[(name, name.replace("_", " ").strip().capitalize()) for name in secrets],
        back=back,
    )


def _from_our_site() -> bool:
    origin = request.headers.get("Origin")
    if origin:
        return _is_ours(origin)
    if request.headers.get("Sec-Fetch-Site"):
        return request.headers["Sec-Fetch-Site"] == "same-origin"
    return _is_ours(request.referrer)


def _is_ours(url: str | None) -> bool:
    if not url:
        return False
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    public = urlsplit(current_app.config.get("PUBLIC_BASE_URL") or "")
    return origin in {request.host_url.rstrip("/"), f"{public.scheme}://{public.netloc}"}


def _public_description(exc: HTTPException) -> str:
    if isinstance(exc, CSRFError):
        return "The CSRF token is missing or invalid."
    return exc.description or exc.name


def handle_unexpected_error(exc: Exception) -> Response | tuple[str, int]:
    # Nothing half-written survives a crash: roll back before answering. No log line here:
    # Flask has already logged the exception and its traceback (Flask.log_exception, on the
    # "webapp" logger, with the request id) before calling this handler.
    db.session.rollback()
    if is_api_request():
        return api_error(500, "internal_error", "Something went wrong on our side.")
    return error_page(500)


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_exception)

    @app.errorhandler(InternalServerError)
    def internal_error(exc: InternalServerError):
        original = getattr(exc, "original_exception", None) or exc
        return handle_unexpected_error(original)
