"""Subscription schedules: planned changes to a subscription, phase by phase.

Sources: docs.stripe.com/billing/subscriptions/subscription-schedules (D-SS), the API pages
for release and cancel, and the SDK's `_subscription_schedule.py` and its params. The customer
portal's scheduled downgrades are schedules too (docs.stripe.com/customer-management/
configure-portal, "Manage downgrades").
"""

from __future__ import annotations

import copy
from typing import Any

from webapp.sandbox import objects
from webapp.sandbox.operations.changes import ACTIVE, Change, apply_change, interval_of
from webapp.sandbox.operations.invoicing import create_invoice, period_line
from webapp.sandbox.operations.payments import default_payment_method, pay_invoice
from webapp.sandbox.store import Store, diff
from webapp.sandbox.wire import invalid, refused

LIVE = ("not_started", "active")
MAX_PHASES = 10  # "at most 10 current or future phases" (D-SS)


def _refuse_unless_live(schedule: dict[str, Any], action: str) -> None:
    if schedule["status"] not in LIVE:
        # The rule is Stripe's ("can only be released/canceled if its status is not_started
        # or active", SDK `_subscription_schedule.py`); the wording is an assumption.
        raise refused(
            f"You cannot {action} a subscription schedule whose status is "
            f"`{schedule['status']}`; only `not_started` or `active` schedules can be {action}d."
        )


def _current_phase(schedule: dict[str, Any]) -> dict[str, Any] | None:
    index = schedule.get("_phase")
    return None if index is None else schedule["phases"][index]


def _show_current_phase(schedule: dict[str, Any]) -> None:
    phase = _current_phase(schedule)
    schedule["current_phase"] = (
        {"end_date": phase["end_date"], "start_date": phase["start_date"]}
        if phase is not None and schedule["status"] == "active"
        else None
    )


def _attach(store: Store, schedule: dict[str, Any], sub: dict[str, Any]) -> dict[str, Any]:
    """`subscription.schedule` now names the schedule (`customer.subscription.updated`)."""
    before = copy.deepcopy(sub)
    sub["schedule"] = schedule["id"]
    store.save(sub)
    store.emit("customer.subscription.updated", sub, diff(before, sub))
    return sub


# --- creating ---------------------------------------------------------------------------------


def from_subscription(
    store: Store,
    sub: dict[str, Any],
    *,
    metadata: dict[str, str] | None = None,
    next_phase: tuple[dict[str, Any], int] | None = None,
    release_when_next_phase_starts: bool = False,
) -> dict[str, Any]:
    """A schedule for an existing subscription: one phase for its current period (D-SS,
    `from_subscription`), and optionally a second one (a price and quantity) from the end of
    that period for one interval of the new price."""
    if sub["status"] not in ACTIVE:
        raise refused(
            f"The subscription {sub['id']} is canceled and cannot be scheduled.",
            param="from_subscription",
        )
    if sub.get("schedule"):
        # Assumption: Stripe's wording; a subscription has at most one schedule.
        raise refused(
            f"The subscription {sub['id']} is already attached to a schedule: `{sub['schedule']}`.",
            param="from_subscription",
        )
    item = sub["items"]["data"][0]
    start, end = item["current_period_start"], item["current_period_end"]
    phases = [
        objects.schedule_phase(
            start=start,
            end=end,
            items=[{"price": item["price"], "quantity": item["quantity"]}],
            currency=sub["currency"],
        )
    ]
    if next_phase is not None:
        price, quantity = next_phase
        phases.append(
            objects.schedule_phase(
                start=end,
                end=objects.add_interval(end, *interval_of(price)),
                items=[{"price": price["id"], "quantity": quantity}],
                currency=sub["currency"],
            )
        )
    schedule = objects.subscription_schedule(
        store.now(),
        customer_id=sub["customer"],
        phases=phases,
        end_behavior="release",
        billing_mode=copy.deepcopy(sub["billing_mode"]),
        metadata=metadata,
    )
    schedule.update(status="active", subscription=sub["id"], _phase=0)
    # The portal's downgrade schedule is released as its last phase starts: observed on
    # Stripe (research plan_changes.md §2, [3P-T1]), not documented.
    schedule["_release_when_last_phase_starts"] = release_when_next_phase_starts
    _show_current_phase(schedule)
    store.save(schedule)
    store.emit("subscription_schedule.created", schedule)
    _attach(store, schedule, sub)
    return schedule


def build_phases(
    store: Store,
    phases: list[dict[str, Any]],
    *,
    start: int,
    currency: str | None,
    keep_first_start: bool = False,
) -> list[dict[str, Any]]:
    """Phases from request parameters: each starts when the previous one ends and lasts until
    its `end_date`, for its `duration`, or (assumption, as the last phase of Stripe's
    examples) one interval of its first price."""
    if not phases:
        raise invalid("Missing required param: phases.", param="phases", code="parameter_missing")
    if len(phases) > MAX_PHASES:
        raise invalid(
            f"A subscription schedule can have at most {MAX_PHASES} current or future phases.",
            param="phases",
        )
    built = []
    now = store.now()
    for index, phase in enumerate(phases):
        where = f"phases[{index}]"
        if index == 0 and not keep_first_start and "start_date" in phase:
            start = now if phase["start_date"] == "now" else _int(phase["start_date"], where)
        items = []
        for position, item in enumerate(phase.get("items") or []):
            price_id = item.get("price") or item.get("plan")
            price = store.get("price", price_id, param=f"{where}[items][{position}][price]")
            if price["type"] != "recurring":
                raise invalid(
                    f"The price `{price['id']}` is not recurring.",
                    param=f"{where}[items][{position}][price]",
                )
            if currency and price["currency"] != currency:
                raise invalid(
                    "All prices of a schedule must share its currency.",
                    param=f"{where}[items][{position}][price]",
                )
            currency = price["currency"]
            quantity = _int(item.get("quantity", 1), f"{where}[items][{position}][quantity]")
            items.append({"price": price["id"], "quantity": quantity, "_price": price})
        if len(items) != 1:
            raise invalid(
                "The sandbox supports schedules whose phases have exactly one item.",
                param=f"{where}[items]",
            )
        if "end_date" in phase and "duration" in phase:
            raise invalid(
                "You may only specify one of these parameters: duration, end_date.",
                param=f"{where}[end_date]",
            )
        if "end_date" in phase:
            end = now if phase["end_date"] == "now" else _int(phase["end_date"], where)
        elif "duration" in phase:
            duration = phase["duration"]
            interval = duration.get("interval")
            if interval not in ("day", "week", "month", "year"):
                raise invalid("Invalid duration[interval]", param=f"{where}[duration][interval]")
            count = _int(duration.get("interval_count", 1), f"{where}[duration][interval_count]")
            end = objects.add_interval(start, interval, count)
        else:
            end = objects.add_interval(start, *interval_of(items[0]["_price"]))
        if end <= start:
            raise invalid("A phase must end after it starts.", param=f"{where}[end_date]")
        behavior = phase.get("proration_behavior", "create_prorations")
        if behavior not in ("always_invoice", "create_prorations", "none"):
            raise invalid("Invalid proration_behavior", param=f"{where}[proration_behavior]")
        for item in items:
            item.pop("_price")
        built.append(
            objects.schedule_phase(
                start=start,
                end=end,
                items=items,
                currency=currency or "usd",
                proration_behavior=behavior,
                metadata=phase.get("metadata") or None,
            )
        )
        start = end
    return built


def _int(value: Any, param: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid(
            f"Invalid integer: {value}", param=param, code="parameter_invalid_integer"
        ) from None


def create_for_customer(
    store: Store,
    customer: dict[str, Any],
    phases: list[dict[str, Any]],
    *,
    start_date: Any,
    end_behavior: str,
    metadata: dict[str, str],
    billing_mode: str,
) -> dict[str, Any]:
    """A schedule that will make its own subscription when its first phase starts."""
    now = store.now()
    start = now if start_date in (None, "now") else _int(start_date, "start_date")
    schedule = objects.subscription_schedule(
        now,
        customer_id=customer["id"],
        phases=build_phases(store, phases, start=start, currency=None, keep_first_start=True),
        end_behavior=end_behavior,
        billing_mode=objects.billing_mode(billing_mode, now),
        metadata=metadata,
    )
    if start <= now and not default_payment_method(store, customer, None):
        raise invalid(
            "This customer has no attached payment source or default payment method. Please "
            "consider adding a default payment method.",
            param="customer",
            code="resource_missing",
        )
    store.save(schedule)
    if start <= now:
        start_schedule(store, schedule, announce=False)
    store.emit("subscription_schedule.created", schedule)
    return schedule


def start_schedule(
    store: Store, schedule: dict[str, Any], *, announce: bool = True
) -> dict[str, Any]:
    """The first phase begins: Stripe creates the subscription and bills its first period;
    a schedule that was waiting says so (`subscription_schedule.updated`)."""
    before = copy.deepcopy(schedule)
    phase = schedule["phases"][0]
    customer = store.get("customer", schedule["customer"])
    price = store.get("price", phase["items"][0]["price"])
    pm = default_payment_method(store, customer, None)
    sub = objects.subscription(
        phase["start_date"],
        customer_id=customer["id"],
        price_obj=price,
        quantity=phase["items"][0]["quantity"],
        metadata=dict(phase["metadata"]),
        payment_method_id=pm["id"] if pm else None,
        mode=schedule["billing_mode"]["type"],
    )
    sub["schedule"] = schedule["id"]
    store.save(sub)
    store.emit("customer.subscription.created", sub)
    schedule.update(status="active", subscription=sub["id"], _phase=0)
    _show_current_phase(schedule)
    store.save(schedule)
    if announce:
        store.emit("subscription_schedule.updated", schedule, diff(before, schedule))
    item = sub["items"]["data"][0]
    line = period_line(store, item, price, item["current_period_start"], item["current_period_end"])
    invoice = create_invoice(
        store, customer, sub, "subscription_create", [line], sub["created"], sub["created"]
    )
    before_sub = copy.deepcopy(sub)
    sub["latest_invoice"] = invoice["id"]
    if not pay_invoice(store, invoice, pm, off_session=True):
        sub["status"] = "past_due"
    _enter_final_phase_if_last(schedule, sub)
    store.save(schedule)
    store.save(sub)
    store.emit("customer.subscription.updated", sub, diff(before_sub, sub))
    return sub


def start_due_schedules(store: Store, now: int) -> None:
    """Schedules whose start date the clock passed start then."""
    from webapp.sandbox.operations.clock import advance_subscription

    for schedule in store.query("subscription_schedule"):
        start = schedule["phases"][0]["start_date"]
        if schedule["status"] == "not_started" and start <= now:
            with store.moment(start):
                sub = start_schedule(store, schedule)
            advance_subscription(store, sub, now)


# --- while it runs ----------------------------------------------------------------------------


def _enter_final_phase_if_last(schedule: dict[str, Any], sub: dict[str, Any]) -> None:
    """With `end_behavior=cancel`, the subscription's `cancel_at` is set when it enters the
    final phase (D-SS)."""
    if schedule["end_behavior"] == "cancel" and schedule["_phase"] == len(schedule["phases"]) - 1:
        sub["cancel_at"] = schedule["phases"][-1]["end_date"]
        sub["_cancel_at_from_schedule"] = True


def next_transition(store: Store, sub: dict[str, Any]) -> int | None:
    """When the subscription's schedule next acts: its next phase starts, or it ends."""
    schedule = store.find(sub["schedule"])
    if schedule is None or schedule["status"] != "active":
        return None
    index = schedule["_phase"]
    if index + 1 < len(schedule["phases"]):
        return schedule["phases"][index + 1]["start_date"]
    if schedule["end_behavior"] == "cancel":
        return None  # the subscription's cancel_at ends both
    return schedule["phases"][index]["end_date"]


def transition(store: Store, sub: dict[str, Any], when: int) -> dict[str, Any]:
    """At `when` the schedule moves to its next phase (its items become the subscription's,
    prorated as the phase says; at a period boundary nothing is left to prorate, so the
    renewal that follows bills the new price), or, past its last phase, is released."""
    schedule = store.get("subscription_schedule", sub["schedule"], for_update=True)
    before_schedule = copy.deepcopy(schedule)
    index = schedule["_phase"]
    if index + 1 >= len(schedule["phases"]):
        return release(store, schedule, preserve_cancel_date=True)
    phase = schedule["phases"][index + 1]
    wanted = phase["items"][0]
    before = copy.deepcopy(sub)
    item = sub["items"]["data"][0]
    if when >= item["current_period_end"]:
        # At the period's end: the renewal that follows bills the new price and interval.
        item["price"], item["quantity"] = wanted["price"], wanted["quantity"]
    else:
        sub = apply_change(
            store,
            sub,
            Change(
                price=store.get("price", wanted["price"]),
                quantity=wanted["quantity"],
                proration_behavior=phase["proration_behavior"],
                off_session=True,
            ),
        )
    if phase["metadata"]:
        sub["metadata"] = {**sub["metadata"], **phase["metadata"]}
    schedule["_phase"] = index + 1
    _show_current_phase(schedule)
    _enter_final_phase_if_last(schedule, sub)
    last = schedule["_phase"] == len(schedule["phases"]) - 1
    if last and schedule.get("_release_when_last_phase_starts"):
        store.save(sub)
        store.save(schedule)
        return release(store, schedule, preserve_cancel_date=True, before_sub=before)
    store.save(schedule)
    store.emit("subscription_schedule.updated", schedule, diff(before_schedule, schedule))
    store.save(sub)
    store.emit("customer.subscription.updated", sub, diff(before, sub))
    return sub


# --- ending -----------------------------------------------------------------------------------


def release(
    store: Store,
    schedule: dict[str, Any],
    *,
    preserve_cancel_date: bool = False,
    before_sub: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Stop scheduling, keep the subscription: `status=released`, `released_subscription`,
    `subscription.schedule` null (SDK `_subscription_schedule.py`, release). Returns the
    subscription (or {} when the schedule had not started)."""
    _refuse_unless_live(schedule, "release")
    now = store.now()
    sub_id = schedule["subscription"]
    schedule.update(
        status="released", released_at=now, released_subscription=sub_id, subscription=None
    )
    _show_current_phase(schedule)
    store.save(schedule)
    store.emit("subscription_schedule.released", schedule)
    if sub_id is None:
        return {}
    sub = store.get("subscription", sub_id, for_update=True)
    before = before_sub or copy.deepcopy(sub)
    sub["schedule"] = None
    if sub.pop("_cancel_at_from_schedule", False) and not preserve_cancel_date:
        sub["cancel_at"] = None
    store.save(sub)
    store.emit("customer.subscription.updated", sub, diff(before, sub))
    return sub


def cancel(
    store: Store, schedule: dict[str, Any], *, invoice_now: bool, prorate: bool
) -> dict[str, Any]:
    """Cancel the schedule and, if it has one, its subscription, at once (SDK
    `_subscription_schedule.py`, cancel; `invoice_now` and `prorate` default to true)."""
    from webapp.sandbox.operations.changes import cancel_now

    _refuse_unless_live(schedule, "cancel")
    _end(store, schedule, "canceled")
    if schedule["subscription"]:
        sub = store.get("subscription", schedule["subscription"], for_update=True)
        if sub["status"] != "canceled":
            cancel_now(store, sub, prorate=prorate, invoice_now=invoice_now)
    return schedule


def _end(store: Store, schedule: dict[str, Any], status: str) -> None:
    stamp = "canceled_at" if status == "canceled" else "completed_at"
    schedule.update(status=status, **{stamp: store.now()})
    _show_current_phase(schedule)
    store.save(schedule)
    store.emit(f"subscription_schedule.{status}", schedule)


def end_with_subscription(store: Store, sub: dict[str, Any]) -> None:
    """The subscription ended while its schedule was live: the schedule completes when that
    was its planned end (`end_behavior=cancel`), else it is canceled with it (assumption:
    Stripe documents `aborted` only for delinquency)."""
    schedule = store.find(sub["schedule"])
    if schedule is None or schedule["status"] not in LIVE:
        return
    planned = (
        schedule["end_behavior"] == "cancel"
        and sub["ended_at"] >= (schedule["phases"][-1]["end_date"])
    )
    _end(store, schedule, "completed" if planned else "canceled")


def update(store: Store, schedule: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Replace the phases (all current and future ones must be passed, D-SS), the end
    behaviour or the metadata. Changing the current phase changes the subscription now, with
    the request's `proration_behavior` (default `create_prorations`): "Updating the active
    phase updates the underlying subscription as well." (D-SS)"""
    from webapp.sandbox.operations.clock import advance_subscription

    _refuse_unless_live(schedule, "update")
    before = copy.deepcopy(schedule)
    if "end_behavior" in params:
        schedule["end_behavior"] = params["end_behavior"]
    if "metadata" in params:
        schedule["metadata"] = params["metadata"]
    current = _current_phase(schedule)
    if "phases" in params:
        first = (params["phases"] or [{}])[0]
        start = first.get("start_date")
        if (
            current is not None
            and start not in (None, "now")
            and _int(start, "phases[0][start_date]") != current["start_date"]
        ):
            raise invalid(
                "You can not modify the start date of the current phase.",
                param="phases[0][start_date]",
            )
        schedule["phases"] = build_phases(
            store,
            params["phases"],
            start=current["start_date"] if current else schedule["phases"][0]["start_date"],
            currency=schedule["phases"][0]["currency"],
            keep_first_start=current is not None,
        )
        if current is not None:
            schedule["_phase"] = 0
        _show_current_phase(schedule)
    store.save(schedule)
    if changes := diff(before, schedule):
        store.emit("subscription_schedule.updated", schedule, changes)
    if schedule["subscription"] is None:
        return schedule
    sub = store.get("subscription", schedule["subscription"], for_update=True)
    sub_before = copy.deepcopy(sub)
    wanted = schedule["phases"][schedule["_phase"]]["items"][0]
    item = sub["items"]["data"][0]
    if (wanted["price"], wanted["quantity"]) != (item["price"], item["quantity"]):
        sub = apply_change(
            store,
            sub,
            Change(
                price=store.get("price", wanted["price"]),
                quantity=wanted["quantity"],
                proration_behavior=params.get("proration_behavior", "create_prorations"),
            ),
        )
    sub.pop("_cancel_at_from_schedule", None)
    _enter_final_phase_if_last(schedule, sub)
    store.save(sub)
    if changes := diff(sub_before, sub):
        store.emit("customer.subscription.updated", sub, changes)
    # A phase that now ends at once hands over at once.
    advance_subscription(store, sub, store.now())
    return store.get("subscription_schedule", schedule["id"])
