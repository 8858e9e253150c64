"""Template filters and globals: money, numbers, dates and fingerprinted static URLs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

from flask import Flask, Response, request, url_for
from markupsafe import Markup

from webapp.catalog import format_money
from webapp.copy_checks import is_credit_line
from webapp.markup import render_markdown
from webapp.plan_copy import published_copy
from webapp.urls import public_url

ONE_YEAR = 365 * 24 * 3600


def format_number(value: int) -> str:
    return f"{value:,}"


def format_signed_number(value: int) -> str:
    """`3000` → `+3,000`; `-1250` → `-1,250` (ledger amounts)."""
    return f"{value:+,}"


def format_date(moment: date) -> str:
    """The one date style of every page and mail: `3 Dec 2026` (day month year, unambiguous
    wherever the reader lives)."""
    return f"{_utc(moment):%-d %b %Y}"


def format_datetime(moment: datetime) -> str:
    """A moment, where the time of day matters: `3 Dec 2026 at 13:07 UTC`."""
    return f"{_utc(moment):%-d %b %Y at %H:%M} UTC"


def _utc(moment: date) -> date:
    # Our columns hold naive UTC; an aware value (from Stripe, or now()) is turned to UTC first.
    if isinstance(moment, datetime) and moment.tzinfo is not None:
        return moment.astimezone(UTC)
    return moment


@dataclass(frozen=True)
class ErrorLink:
    """One line of a form's error summary: which field (its id, for the link) and what is wrong."""

    field_id: str
    label: str
    message: str


def error_links(form: Any, context: str = "") -> list[ErrorLink]:
    """Every field in error in `form`, sub-forms and lists included, in page order.

    A sub-form's fields are named with their context ("Professional · Tagline"), since the
    copy editor repeats the same labels once per plan."""
    links: list[ErrorLink] = []
    for field in form:
        label = f"{context} · {field.label.text}" if context else field.label.text
        if field.type == "FormField":
            links += error_links(field.form, label)
        elif field.type == "FieldList":
            links += [
                link
                for number, entry in enumerate(field.entries, start=1)
                for link in _entry_links(entry, f"{label} {number}")
            ]
            # A list's own validator (e.g. "At most 8 questions") leaves plain strings.
            own = [error for error in field.errors if isinstance(error, str)]
            if own:
                links.append(ErrorLink(field.id, label, " ".join(own)))
        elif field.errors and field.type != "CSRFTokenField":
            links.append(ErrorLink(field.id, label, " ".join(map(str, field.errors))))
    return links


def _entry_links(entry: Any, label: str) -> list[ErrorLink]:
    if entry.type == "FormField":
        return error_links(entry.form, label)
    if entry.errors:
        return [ErrorLink(entry.id, label, " ".join(map(str, entry.errors)))]
    return []


def hidden_fields(form: Any) -> Markup:
    """A form's hidden fields, its CSRF token included, rendered without ids: `hidden_tag()`
    gives every form's token `id="csrf_token"`, repeated on a page with several forms."""
    # Each field renders itself as Markup (values escaped); joining keeps that.
    return Markup("").join(field(id=False) for field in form if _is_hidden(field))


def _is_hidden(field: Any) -> bool:
    return getattr(field.widget, "input_type", None) == "hidden"


@cache
def _fingerprint(static_folder: str, filename: str) -> str:
    digest = hashlib.sha256(Path(static_folder, filename).read_bytes()).hexdigest()
    return digest[:12]


def init_app(app: Flask) -> None:
    app.jinja_env.filters["money"] = format_money
    app.jinja_env.filters["number"] = format_number
    app.jinja_env.filters["signed_number"] = format_signed_number
    app.jinja_env.filters["markdown"] = render_markdown
    app.jinja_env.filters["date"] = format_date
    app.jinja_env.filters["datetime"] = format_datetime
    # Absolute links on PUBLIC_BASE_URL, for mail (templates/email/).
    app.jinja_env.globals["public_url"] = public_url
    app.jinja_env.globals["error_links"] = error_links
    app.jinja_env.globals["hidden_fields"] = hidden_fields
    app.jinja_env.globals["is_credit_line"] = is_credit_line

    @app.after_request
    def cache_fingerprinted_assets(response: Response) -> Response:
        # A fingerprinted URL never changes content, so browsers may keep it for a year.
        if request.endpoint == "static" and "v" in request.args and response.status_code == 200:
            response.cache_control.no_cache = None  # send_file's default would force revalidation
            response.cache_control.public = True
            response.cache_control.max_age = ONE_YEAR
            response.cache_control.immutable = True
        return response

    @app.template_global()
    def plan_name(plan_id: str) -> str:
        """A plan's published display name (marketing may rename plans)."""
        return published_copy().plan(plan_id)["name"]

    @app.template_global()
    def pack_name(pack_id: str) -> str:
        """A credit pack's published display name (marketing may rename packs)."""
        return published_copy().pack(pack_id)["name"]

    @app.template_global()
    def asset(filename: str) -> str:
        """A static URL that changes whenever the file does, so it can be cached for a year."""
        version = _fingerprint(app.static_folder or "", filename)
        return url_for("static", filename=filename, v=version)
