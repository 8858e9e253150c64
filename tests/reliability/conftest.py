"""Reliability fixtures: the figures recorder, PostgreSQL-only tests, threads of test clients."""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

# The report's rows, in order. The last two must stay at zero.
FIGURES = (
    "events delivered",
    "duplicates",
    "reordered",
    "faults injected",
    "5xx answered",
    "bad inputs tried",
    "effects doubled",
    "rows lost",
)
MUST_BE_ZERO = ("effects doubled", "rows lost")

# Attacks by group (issue 13's list), each counted as tried and as refused; the report fails
# unless every attack tried was refused.
ATTACK_GROUPS = (
    "forged hosts and redirects",
    "login guessing and lock-outs",
    "sign-up probes and floods",
    "password-reset probes and reused links",
    "unknown environments and weak production settings",
    "sessions and tokens after logout",
    "checkouts started by a cross-site GET",
    "CSRF tokens harvested through copy",
    "bad characters at the edge",
    "signed but malformed events",
    "limits, reused checkouts, weak passwords, form targets",
)


class Figures:
    """Counts what the tests did to the site; written as JSON for `report.py` to print."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter(dict.fromkeys(FIGURES, 0))
        self.attacks: dict[str, Counter[str]] = {
            group: Counter(tried=0, refused=0) for group in ATTACK_GROUPS
        }
        self._lock = threading.Lock()

    def add(self, name: str, amount: int = 1) -> None:
        if name not in FIGURES:
            raise KeyError(f"unknown figure {name!r}; one of {FIGURES}")
        with self._lock:
            self.counts[name] += amount

    def attack(self, group: str, *, refused: bool) -> bool:
        """Count one attack of `group`; returns `refused` so a test can assert on it."""
        if group not in ATTACK_GROUPS:
            raise KeyError(f"unknown attack group {group!r}; one of {ATTACK_GROUPS}")
        with self._lock:
            self.counts["bad inputs tried"] += 1
            self.attacks[group]["tried"] += 1
            self.attacks[group]["refused"] += int(refused)
        return refused

    def as_json(self) -> dict[str, Any]:
        return {
            "figures": {name: self.counts[name] for name in FIGURES},
            "attacks": {group: dict(self.attacks[group]) for group in ATTACK_GROUPS},
        }

    def count_5xx(self, statuses: list[int]) -> None:
        self.add("5xx answered", sum(1 for status in statuses if status >= 500))


@pytest.fixture(scope="session")
def figures() -> Iterator[Figures]:
    recorder = Figures()
    yield recorder
    target = os.environ.get("RELIABILITY_FIGURES")
    if target:
        Path(target).write_text(json.dumps(recorder.as_json()))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/reliability/" in str(item.fspath) and item.get_closest_marker("postgres"):
            item.fixturenames.insert(0, "_needs_postgres")


@pytest.fixture
def _needs_postgres(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip(
            "needs PostgreSQL (real concurrent writers, a TCP proxy to cut): run `make "
            "reliability` or set DATABASE_URL=postgresql+psycopg://…"
        )


def in_threads(calls: list[Callable[[], T]], workers: int = 20) -> list[T]:
    """Run `calls` on `workers` real threads, all released at once; results in call order."""
    start = threading.Event()

    def run(call: Callable[[], T]) -> T:
        start.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run, call) for call in calls]
        start.set()
        return [future.result() for future in futures]


def json_of(response: Any) -> dict[str, Any]:
    return response.get_json(silent=True) or {}
