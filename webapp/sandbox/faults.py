"""Fault switches: make the next API calls fail or hang, make webhooks arrive oddly.

The switches live in the database, so a switch set from the CLI or the control endpoint holds for
every process serving the site.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from webapp.sandbox.wire import StripeAPIError

if TYPE_CHECKING:
    from webapp.sandbox import Sandbox

API_MODES = ("500", "timeout")

# Calls hanging on a "timeout" fault, in this process: such a call outlives the request that gave
# up on it, so tests wait for it to end before the next one starts (`wait_for_hung_calls`).
# Clearing the switches in this process ends every hang at once (`_released` moves on).
_hangs = threading.Condition()
_hanging = 0
_released = 0
# "lost": the endpoint never gets them, as when Stripe gave up after its retries (or the
# endpoint was disabled when they happened): each delivery is recorded as failed at once, so
# `GET /v1/events?delivery_success=false` lists them, as Stripe's does.
WEBHOOK_MODES = ("duplicate", "reverse", "late", "lost")


class Faults:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def set_api(
        self, count: int, mode: str = "500", delay: float = 30.0, path: str | None = None
    ) -> None:
        """The next `count` API calls fail with a 500, or hang for `delay` seconds ("timeout").

        With `path`, only calls whose path starts with it (`/v1/billing_portal/sessions`):
        background work (a webhook retried by the delivery worker) cannot spend the fault.
        """
        if mode not in API_MODES:
            raise ValueError(f"API fault mode must be one of {API_MODES}")
        fault: dict[str, Any] = {"remaining": count, "mode": mode, "delay": delay}
        if path:
            fault["path"] = path
        with self.sandbox.store() as store:
            store.set_setting("fault_api", fault)

    def set_webhooks(self, mode: str | None, count: int = 1, delay: float = 5.0) -> None:
        """The events of the next `count` state changes are sent twice, reversed, late or never."""
        if mode is not None and mode not in WEBHOOK_MODES:
            raise ValueError(f"webhook fault mode must be one of {WEBHOOK_MODES}")
        with self.sandbox.store() as store:
            value = {"remaining": count, "mode": mode, "delay": delay} if mode else None
            store.set_setting("fault_webhooks", value)

    def clear(self) -> None:
        """Disarm every switch; calls of this process hanging on a fault return now."""
        global _released
        with self.sandbox.store() as store:
            store.set_setting("fault_api", None)
            store.set_setting("fault_webhooks", None)
        with _hangs:
            _released += 1
            _hangs.notify_all()

    def status(self) -> dict[str, Any]:
        with self.sandbox.store() as store:
            return {
                "api": store.setting("fault_api"),
                "webhooks": store.setting("fault_webhooks"),
            }

    def before_api_call(self, path: str) -> None:
        """Spend one API fault if any is armed for `path`, and fail this call with it."""
        with self.sandbox.store() as store:
            fault = _take(store, "fault_api", path)
        if fault is None:
            return
        if fault["mode"] == "timeout":
            # Hang like a server that never answers; the client's timeout fires first. Nothing
            # is done, as if the request never arrived.
            _hang(float(fault.get("delay", 30.0)))
        raise StripeAPIError(
            500,
            "An unknown error occurred (sandbox fault switch).",
            type="api_error",
        )

    def webhook_plan(self, store: Any) -> dict[str, Any]:
        """How to queue the events of the current state change (spends one webhook fault)."""
        return _take(store, "fault_webhooks") or {}


def _take(store: Any, key: str, path: str = "") -> dict[str, Any] | None:
    fault = store.setting(key)
    if not fault or fault.get("remaining", 0) <= 0:
        return None
    if fault.get("path") and not path.startswith(fault["path"]):
        return None
    remaining = fault["remaining"] - 1
    store.set_setting(key, {**fault, "remaining": remaining} if remaining > 0 else None)
    return fault


def _hang(seconds: float) -> None:
    """Sleep `seconds`, or until the switches are cleared in this process."""
    global _hanging
    with _hangs:
        _hanging += 1
        released = _released
        try:
            _hangs.wait_for(lambda: _released != released, seconds)
        finally:
            _hanging -= 1
            _hangs.notify_all()


def wait_for_hung_calls(timeout: float) -> bool:
    """Wait until no call of this process hangs on a fault; False if one still does."""
    with _hangs:
        return _hangs.wait_for(lambda: _hanging == 0, timeout)
