"""Template filters and globals: money, numbers and fingerprinted static URLs."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from flask import Flask, Response, request, url_for

from webapp.catalog import format_money
from webapp.markup import render_markdown
from webapp.plan_copy import published_copy
from webapp.urls import public_url

ONE_YEAR = 365 * 24 * 3600


def format_number(value: int) -> str:
    return f"{value:,}"


def format_signed_number(value: int) -> str:
    """`3000` → `+3,000`; `-1250` → `-1,250` (ledger amounts)."""
    return f"{value:+,}"


@cache
def _fingerprint(static_folder: str, filename: str) -> str:
    digest = hashlib.sha256(Path(static_folder, filename).read_bytes()).hexdigest()
    return digest[:12]


def init_app(app: Flask) -> None:
    app.jinja_env.filters["money"] = format_money
    app.jinja_env.filters["number"] = format_number
    app.jinja_env.filters["signed_number"] = format_signed_number
    app.jinja_env.filters["markdown"] = render_markdown
    # Absolute links on PUBLIC_BASE_URL, for mail (templates/email/).
    app.jinja_env.globals["public_url"] = public_url

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
