"""Absolute URLs of our own pages, on the configured public origin.

Stripe sends payers back to the URLs we give it, so they must never come from the request's Host
header (anyone can forge it): they are built on PUBLIC_BASE_URL.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import current_app, url_for


def public_url(endpoint: str, **values: Any) -> str:
    """`url_for(endpoint, **values)` as an absolute URL on the site's public origin."""
    return current_app.config["PUBLIC_BASE_URL"] + url_for(endpoint, **values)


def public_host() -> str:
    """The public origin's `host[:port]`, as the redirect allowlist spells hosts."""
    return urlsplit(current_app.config["PUBLIC_BASE_URL"]).netloc
