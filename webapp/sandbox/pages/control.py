"""JSON control endpoints for tests and scripts: the test clock, fault switches, deliveries."""

from __future__ import annotations

from flask import jsonify, request
from werkzeug.wrappers import Response

from webapp.extensions import csrf
from webapp.sandbox import operations
from webapp.sandbox.pages.blueprint import bp
from webapp.sandbox.pages.common import sandbox


@bp.post("/control/advance")
@csrf.exempt
def control_advance() -> Response:
    """Advance the test clock: `{"days": 31}` or `{"seconds": 60}`."""
    body = request.get_json(silent=True) or {}
    seconds = int(float(body.get("days", 0)) * 86400 + float(body.get("seconds", 0)))
    if seconds <= 0:
        return jsonify(error={"message": "give a positive `days` or `seconds`"}), 400  # type: ignore[return-value]
    with sandbox().store() as store:
        now = operations.advance_clock(store, seconds)
    return jsonify(now=now)


@bp.post("/control/faults")
@csrf.exempt
def control_faults() -> Response:
    """Arm fault switches: `{"api": {"count": 2, "mode": "500"}, "webhooks": {"mode": "late"}}`."""
    body = request.get_json(silent=True) or {}
    faults = sandbox().faults
    try:
        if body.get("clear"):
            faults.clear()
        if api := body.get("api"):
            faults.set_api(
                int(api.get("count", 1)), api.get("mode", "500"), float(api.get("delay", 30))
            )
        if hooks := body.get("webhooks"):
            faults.set_webhooks(
                hooks.get("mode"), int(hooks.get("count", 1)), float(hooks.get("delay", 5))
            )
    except ValueError as exc:
        return jsonify(error={"message": str(exc)}), 400  # type: ignore[return-value]
    return jsonify(faults.status())


@bp.post("/control/deliver")
@csrf.exempt
def control_deliver() -> Response:
    """Send pending webhooks now (`{"include_late": true}` also sends the late ones)."""
    body = request.get_json(silent=True) or {}
    sent = sandbox().webhooks.deliver_due(include_late=bool(body.get("include_late")))
    return jsonify(delivered=sent)


@bp.get("/control/deliveries")
def control_deliveries() -> Response:
    rows = sandbox().webhooks.delivery_log(limit=int(request.args.get("limit", 50)))
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
