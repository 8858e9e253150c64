"""Subscription schedules (filled in by the schedules work; the clock already asks them)."""

from __future__ import annotations

from typing import Any

from webapp.sandbox.store import Store


def start_due_schedules(store: Store, now: int) -> None:
    return None


def next_transition(store: Store, sub: dict[str, Any]) -> int | None:
    return None


def transition(store: Store, sub: dict[str, Any], when: int) -> dict[str, Any]:
    return sub


def end_with_subscription(store: Store, sub: dict[str, Any]) -> None:
    return None
