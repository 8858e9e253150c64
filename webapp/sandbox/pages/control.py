"""JSON control endpoints for tests and scripts: the test clock, fault switches, deliveries."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from flask import abort, jsonify, request
from werkzeug.wrappers import Response

from webapp.extensions import csrf
from webapp.sandbox import operations
from webapp.sandbox.pages.blueprint import bp
from webapp.sandbox.pages.common import sandbox

MAX_ADVANCE_SECONDS = 100 * 365 * 86400


def _body() -> dict[str, Any]:
    """The JSON object sent; a 400 for anything else (a list, a string)."""
    body = request.get_json(silent=True) or {}
    if not isinstance(body, dict):
        abort(400, "send a JSON object")
    return body


def _number(value: Any, name: str, parse: Callable[[Any], float] = float) -> Any:
    """`value` as a number (a JSON number or a numeric string); a 400 otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        abort(400, f"`{name}` must be a number")
    try:
        number = parse(value)
    except ValueError:
        abort(400, f"`{name}` must be a number")
    if not math.isfinite(number):
        abort(400, f"`{name}` must be a finite number")
    return number


@bp.post("/control/advance")
@csrf.exempt
def control_advance() -> Response:
    """Advance the test clock: `{"days": 31}` or `{"seconds": 60}`."""
    body = _body()
    days, seconds = _number(body.get("days", 0), "days"), _number(body.get("seconds", 0), "seconds")
    if not 0 <= days * 86400 + seconds <= MAX_ADVANCE_SECONDS:
        abort(400, "give `days` or `seconds` of at most 100 years")
    seconds = int(days * 86400 + seconds)
    if seconds <= 0:
        return jsonify(error={"message": "give a positive `days` or `seconds`"}), 400  # type: ignore[return-value]
    with sandbox().store() as store:
        now = operations.advance_clock(store, seconds)
    return jsonify(now=now)


@bp.post("/control/faults")
@csrf.exempt
def control_faults() -> Response:
    """Arm fault switches: `{"api": {"count": 2, "mode": "500"}, "webhooks": {"mode": "late"}}`."""
    body = _body()
    faults = sandbox().faults
    api, hooks = body.get("api"), body.get("webhooks")
    if not isinstance(api or {}, dict) or not isinstance(hooks or {}, dict):
        abort(400, "`api` and `webhooks` must be objects")
    try:
        if body.get("clear"):
            faults.clear()
        if api:
            faults.set_api(
                _number(api.get("count", 1), "api.count", int),
                api.get("mode", "500"),
                _number(api.get("delay", 30), "api.delay"),
            )
        if hooks:
            faults.set_webhooks(
                hooks.get("mode"),
                _number(hooks.get("count", 1), "webhooks.count", int),
                _number(hooks.get("delay", 5), "webhooks.delay"),
            )
    except ValueError as exc:
        return jsonify(error={"message": str(exc)}), 400  # type: ignore[return-value]
    return jsonify(faults.status())


@bp.post("/control/deliver")
@csrf.exempt
def control_deliver() -> Response:
    """Send pending webhooks now (`{"include_late": true}` also sends the late ones)."""
    body = _body()
    sent = sandbox().webhooks.deliver_due(include_late=bool(body.get("include_late")))
    return jsonify(delivered=sent)


@bp.get("/control/deliveries")
def control_deliveries() -> Response:
    limit = _number(request.args.get("limit", "50"), "limit", int)
    rows = sandbox().webhooks.delivery_log(limit=max(1, min(limit, 1000)))
    return jsonify(
        deliveries=[
            {
                "id": row.id,
                "event_id": row.event_id,
                "type": row.event_type,
                "url": row.url,
                "status": row.status,
                "attempts": row.attempts,
                "last_status": row.last_status,
            }
            for row in rows
        ]
    )
