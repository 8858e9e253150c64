"""Billing's own errors: what Stripe answered leaves billing as billing's exception, never the
gateway's, so pages, the API and commands import nothing from the gateway."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.sandbox.helpers import sandbox_of
from webapp import billing, stripe_gateway
from webapp.billing.errors import required
from webapp.extensions import db
from webapp.models import User

ROOT = Path(__file__).resolve().parents[2] / "webapp"
# Everything that calls billing: the blueprints and the commands.
CALLERS = [
    *(ROOT / area for area in ("account", "api", "auth", "checkout", "pricing", "admin", "emails")),
    ROOT / "commands.py",
]


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"STRIPE_MAX_NETWORK_RETRIES": 0}


def _start(app: Flask, user_id: int) -> billing.CheckoutStart:
    with app.test_request_context():
        user = db.session.get_one(User, user_id)
        return billing.start_checkout(
            user,
            "starter",
            "monthly",
            success_url="http://localhost/checkout/success",
            cancel_url="http://localhost/pricing",
        )


def test_stripe_down_leaves_billing_as_its_own_provider_unavailable(app: Flask, user_id: int):
    sandbox_of(app).faults.set_api(1, "500")
    with pytest.raises(billing.ProviderUnavailable) as caught:
        _start(app, user_id)
    assert not isinstance(caught.value, stripe_gateway.PaymentProviderError)
    assert isinstance(caught.value.__cause__, stripe_gateway.ProviderUnavailable)
    assert "not responding" in caught.value.user_message
    assert _start(app, user_id).url  # the fault is spent: the same call now works


def test_a_field_stripe_always_sets_but_did_not_is_a_provider_error():
    assert required("cs_1", "a checkout URL") == "cs_1"
    with pytest.raises(billing.PaymentProviderError, match="without a checkout URL"):
        required(None, "a checkout URL")


def _imports(path: Path) -> set[str]:
    """The modules and names `path` imports, and the `module.name`s it reads."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            found.add(f"webapp.{node.value.id}.{node.attr}")
    return found


def _files(paths: list[Path]) -> list[Path]:
    return [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*.py")))]


def _is_gateway_exception(name: str) -> bool:
    module, _, attr = name.rpartition(".")
    value = getattr(stripe_gateway, attr, None) if module == "webapp.stripe_gateway" else None
    return isinstance(value, type) and issubclass(value, Exception)


def test_pages_api_and_commands_catch_billing_errors_not_the_gateways():
    for path in _files(CALLERS):
        used = sorted(name for name in _imports(path) if _is_gateway_exception(name))
        # The webhook endpoint verifies signatures through the gateway; it is not a caller here.
        assert not used, f"{path.relative_to(ROOT)} uses the gateway's {used}"


def test_the_api_uses_the_account_use_cases_not_the_auth_pages():
    for path in _files([ROOT / "api"]):
        assert "webapp.auth.views" not in _imports(path), path.relative_to(ROOT)
