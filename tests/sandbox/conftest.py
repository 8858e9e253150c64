"""Sandbox tests talk to the sandbox only: the site's own webhook endpoint is left out unless a
test asks for it, so these tests exercise the sandbox, not the billing code behind the webhook."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from webapp.stripe_gateway import StripeGateway, get_gateway


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"SANDBOX_DELIVER_TO_SELF": False}


@pytest.fixture
def gateway(app: Flask) -> Iterator[StripeGateway]:
    with app.app_context():
        yield get_gateway()
