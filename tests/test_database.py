"""`insert_or_ignore`: the one INSERT the billing ledger relies on to settle races."""

from datetime import datetime

from webapp.database import insert_or_ignore
from webapp.extensions import db
from webapp.models.billing import WebhookEvent


def test_insert_or_ignore_inserts_once_and_fills_python_defaults(app):
    row = {"id": "evt_1", "type": "customer.created", "created": 1, "payload": {"a": [1]}}
    with app.app_context():
        assert insert_or_ignore(WebhookEvent, {**row, "status": "ignored"}, ["id"]) is True
        assert insert_or_ignore(WebhookEvent, {**row, "status": "failed"}, ["id"]) is False
        db.session.commit()
        event = db.session.get(WebhookEvent, "evt_1")
        assert event.status == "ignored"  # the first insert won; the second changed nothing
        assert event.payload == {"a": [1]}  # the JSON column's conversion still applies
        assert event.attempts == 0  # filled from the model's default
        assert isinstance(event.received_at, datetime)  # likewise, a callable default
