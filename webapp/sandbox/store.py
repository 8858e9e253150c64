"""The sandbox's state: Stripe objects as JSON rows, read and written in one transaction."""

from __future__ import annotations

import json
import operator
import re
import secrets
import string
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, aliased

from webapp.sandbox.models import SandboxDelivery, SandboxEvent, SandboxObject, SandboxSetting
from webapp.sandbox.wire import resource_missing

ALPHABET = string.ascii_letters + string.digits
# The Dashboard's "Upcoming renewal events" choices (Settings → Billing → Subscriptions and
# emails) and the days the sandbox uses unless told otherwise.
UPCOMING_DAYS_CHOICES = (3, 7, 15, 30, 45)
DEFAULT_UPCOMING_DAYS = 7

# How each object type is named in "No such …" errors, as Stripe names them.
OBJECT_NAMES = {
    "product": "product",
    "price": "price",
    "customer": "customer",
    "checkout.session": "checkout.session",
    "billing_portal.session": "billing_portal.session",
    "subscription": "subscription",
    "invoice": "invoice",
    "payment_method": "PaymentMethod",
    "event": "event",
    "subscription_schedule": "subscription_schedule",
    "payment_intent": "payment_intent",
    "invoice_payment": "invoice_payment",
    "billing_portal.configuration": "billing_portal.configuration",
    "sandbox.hosted_invoice_link": "invoice",
    "sandbox.three_d_secure_challenge": "authentication",
    "coupon": "coupon",
    "promotion_code": "promotion code",
    "discount": "discount",
}


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(ALPHABET) for _ in range(length))


def public_view(obj: Any) -> Any:
    """The object as the API shows it: keys starting with `_` are the sandbox's private notes."""
    if isinstance(obj, dict):
        return {k: public_view(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [public_view(v) for v in obj]
    return obj


class Store:
    """One unit of work against the sandbox tables; collects the events it emits."""

    def __init__(self, session: Session, api_version: str) -> None:
        self.session = session
        self.api_version = api_version
        self.events: list[dict[str, Any]] = []
        self.request_info: dict[str, Any] = {"id": None, "idempotency_key": None}
        # Where the browser finds the hosted pages (links Stripe puts in objects, such as
        # `hosted_invoice_url`); the sandbox sets it for each unit of work.
        self.public_base = "http://localhost:5000/"
        # Days before a renewal that `invoice.upcoming` is sent (SANDBOX_UPCOMING_INVOICE_DAYS).
        self.upcoming_days = DEFAULT_UPCOMING_DAYS
        self._clock_offset: int | None = None
        self._moment: int | None = None

    # --- time -------------------------------------------------------------------------------

    def now(self) -> int:
        """Stripe's "now": wall clock plus the test clock's offset."""
        if self._moment is not None:
            return self._moment
        if self._clock_offset is None:
            self._clock_offset = int(self.setting("clock_offset", 0))
        return int(time.time()) + self._clock_offset

    @contextmanager
    def moment(self, timestamp: int) -> Iterator[None]:
        """Do what the test clock passed over at `timestamp` as of then (objects and events
        are dated then, as Stripe dates what happens at a period boundary)."""
        previous, self._moment = self._moment, timestamp
        try:
            yield
        finally:
            self._moment = previous

    def advance_clock(self, seconds: int) -> int:
        self._clock_offset = int(self.setting("clock_offset", 0)) + seconds
        self.set_setting("clock_offset", self._clock_offset)
        return self.now()

    # --- settings -----------------------------------------------------------------------------

    def setting(self, key: str, default: Any = None) -> Any:
        row = self.session.get(SandboxSetting, key)
        return json.loads(row.value) if row else default

    def set_setting(self, key: str, value: Any) -> None:
        row = self.session.get(SandboxSetting, key)
        if row is None:
            self.session.add(SandboxSetting(key=key, value=json.dumps(value)))
        else:
            row.value = json.dumps(value)
        self.session.flush()

    # --- objects ------------------------------------------------------------------------------

    def find(self, object_id: str, *, for_update: bool = False) -> dict[str, Any] | None:
        query = select(SandboxObject).where(SandboxObject.id == object_id)
        if for_update:
            query = query.with_for_update()
        row = self.session.scalar(query)
        return json.loads(row.data) if row else None

    def get(
        self, object_type: str, object_id: Any, *, param: str = "id", for_update: bool = False
    ) -> dict[str, Any]:
        """The object, or Stripe's 404 `resource_missing`."""
        obj = self.find(object_id, for_update=for_update) if isinstance(object_id, str) else None
        if obj is None or obj.get("object") != object_type:
            raise resource_missing(OBJECT_NAMES.get(object_type, object_type), object_id, param)
        return obj

    def save(self, obj: dict[str, Any]) -> dict[str, Any]:
        row = self.session.get(SandboxObject, obj["id"])
        if row is None:
            row = SandboxObject(id=obj["id"], object=obj["object"], seq=time.time_ns())
            self.session.add(row)
        row.created = obj.get("created") or self.now()
        customer = obj.get("customer")
        row.customer = customer if isinstance(customer, str) else (customer or {}).get("id")
        row.email = obj.get("email") if obj["object"] == "customer" else None
        row.lookup_key = obj.get("lookup_key")
        row.product = obj.get("product") if obj["object"] == "price" else None
        row.active = obj.get("active")
        row.data = json.dumps(obj)
        self.session.flush()
        return obj

    def query(self, object_type: str, **filters: Any) -> list[dict[str, Any]]:
        """Objects of one type, newest first, filtered on the indexed columns."""
        query = select(SandboxObject.data).where(SandboxObject.object == object_type)
        for column, value in filters.items():
            if value is None:
                continue
            attribute = getattr(SandboxObject, column)
            if isinstance(value, list | tuple | set):
                query = query.where(attribute.in_(list(value)))
            else:
                query = query.where(attribute == value)
        query = query.order_by(SandboxObject.seq.desc())
        return [json.loads(data) for data in self.session.scalars(query)]

    # --- how objects are shown -----------------------------------------------------------------

    def render(self, obj: Any) -> Any:
        """A copy of `obj` as the API shows it now (live prices, current line metadata…), still
        carrying the sandbox's private notes."""
        from webapp.sandbox.views import render

        return render(self, obj)

    def view(self, obj: Any) -> Any:
        """`obj` exactly as the API and events show it."""
        return public_view(self.render(obj))

    # --- events -------------------------------------------------------------------------------

    def emit(
        self,
        event_type: str,
        obj: dict[str, Any],
        previous_attributes: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Record an event about `obj` (a snapshot, as Stripe sends it)."""
        data: dict[str, Any] = {"object": self.view(obj)}
        if previous_attributes is not None:
            from webapp.sandbox.views import render_previous

            data["previous_attributes"] = public_view(
                render_previous(self, obj, previous_attributes)
            )
        event = {
            "id": new_id("evt_"),
            "object": "event",
            "api_version": self.api_version,
            "created": self.now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": 0,
            "request": dict(self.request_info),
            "type": event_type,
        }
        self.session.add(
            SandboxEvent(
                id=event["id"], type=event_type, created=event["created"], data=json.dumps(event)
            )
        )
        self.session.flush()
        self.events.append(event)
        return event

    def get_event(self, event_id: str) -> dict[str, Any]:
        row = self.session.scalar(select(SandboxEvent).where(SandboxEvent.id == event_id))
        if row is None:
            raise resource_missing("event", event_id)
        return json.loads(row.data)

    def list_events(self, wanted: EventFilter | None = None) -> list[dict[str, Any]]:
        """Events newest first, filtered as `GET /v1/events` asks (api/events.py)."""
        wanted = wanted or EventFilter()
        query = select(SandboxEvent.type, SandboxEvent.data).order_by(SandboxEvent.seq.desc())
        if wanted.types is not None:
            query = query.where(SandboxEvent.type.in_(wanted.types))
        for bound, value in wanted.created.items():
            query = query.where(_CREATED_BOUNDS[bound](SandboxEvent.created, value))
        if wanted.delivery_success is not None:
            undelivered = _undelivered(SandboxEvent.id)
            query = query.where(~undelivered if wanted.delivery_success else undelivered)
        return [
            json.loads(data)
            for event_type, data in self.session.execute(query)
            if wanted.pattern is None or wanted.pattern.match(event_type)
        ]


@dataclass(frozen=True)
class EventFilter:
    """What `GET /v1/events` filters on: exact types, a `*` pattern, a `created` range, and
    whether every endpoint got the event (`delivery_success`)."""

    types: tuple[str, ...] | None = None
    pattern: re.Pattern[str] | None = None
    created: dict[str, int] = field(default_factory=dict)
    delivery_success: bool | None = None


_CREATED_BOUNDS: dict[str, Callable[[Any, int], Any]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def _undelivered(event_id: Any) -> Any:
    """Some endpoint has not had the event yet, or gave up: a delivery of it is pending or
    failed and no delivery of it to that endpoint succeeded (a duplicate's copy may have)."""
    delivery, delivered = aliased(SandboxDelivery), aliased(SandboxDelivery)
    succeeded = exists().where(
        delivered.event_id == delivery.event_id,
        delivered.url == delivery.url,
        delivered.status == "delivered",
    )
    return exists().where(delivery.event_id == event_id, delivery.status != "delivered", ~succeeded)


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Stripe's `previous_attributes`: the old value of every top-level field that changed."""
    return {
        key: before.get(key)
        for key in after
        if not key.startswith("_") and before.get(key) != after.get(key)
    }
