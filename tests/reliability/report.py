"""`make reliability`: the reliability tests on a fresh PostgreSQL database, then one table.

Creates a uniquely named database (`reliability_<time>_<pid>_<random>`: the server is shared),
runs `pytest tests/reliability` against it with the figures recorder on, drops it, prints the
figures, and exits non-zero if a test failed or a must-be-zero figure is not zero.
RELIABILITY_DATABASE_URL names the server (default: postgres@127.0.0.1:5432, as in CI); a
database named in it is only the prefix of the new one's name, never dropped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.pg_database import DEFAULT_SERVER, scratch_database  # noqa: E402
from tests.reliability.conftest import ATTACK_GROUPS, FIGURES, MUST_BE_ZERO  # noqa: E402


def table(counts: dict[str, int]) -> str:
    width = max(len(name) for name in FIGURES)
    rows = [f"{'figure':<{width}}  {'count':>7}  check", f"{'-' * width}  {'-' * 7}  -----"]
    for name in FIGURES:
        check = ("ok" if counts[name] == 0 else "FAIL (must be 0)") if name in MUST_BE_ZERO else ""
        rows.append(f"{name:<{width}}  {counts[name]:>7}  {check}".rstrip())
    return "\n".join(rows)


def attack_table(attacks: dict[str, dict[str, int]]) -> str:
    """One row per group of attacks: how many were tried, how many refused (all must be)."""
    width = max(len(group) for group in ATTACK_GROUPS)
    rows = [
        f"{'attacks':<{width}}  {'tried':>7}  {'refused':>7}  check",
        f"{'-' * width}  {'-' * 7}  {'-' * 7}  -----",
    ]
    for group in ATTACK_GROUPS:
        tried, refused = attacks[group]["tried"], attacks[group]["refused"]
        check = "ok" if tried and refused == tried else ("none tried" if not tried else "FAIL")
        rows.append(f"{group:<{width}}  {tried:>7}  {refused:>7}  {check}")
    return "\n".join(rows)


def unrefused(attacks: dict[str, dict[str, int]]) -> list[str]:
    return [g for g in ATTACK_GROUPS if attacks[g]["refused"] != attacks[g]["tried"]]


def main() -> int:
    server = os.environ.get("RELIABILITY_DATABASE_URL") or DEFAULT_SERVER
    prefix = make_url(server.replace("postgres://", "postgresql://", 1)).database or "reliability"
    with scratch_database(server, prefix) as url:
        return run_and_report(url)


def run_and_report(url: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        figures_file = Path(tmp) / "figures.json"
        env = {**os.environ, "DATABASE_URL": url, "RELIABILITY_FIGURES": str(figures_file)}
        started = time.monotonic()
        tests = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "tests/reliability",
                *sys.argv[1:],
            ],
            cwd=ROOT,
            env=env,
            check=False,
        )
        elapsed = time.monotonic() - started
        if not figures_file.exists():
            print("reliability: no figures were recorded (the run stopped early)")
            return tests.returncode or 1
        recorded = json.loads(figures_file.read_text())
    counts, attacks = recorded["figures"], recorded["attacks"]
    print()
    print(f"Reliability on PostgreSQL ({make_url(url).database}), {elapsed:.0f} s")
    print(table(counts))
    print()
    print(attack_table(attacks))
    bad = [name for name in MUST_BE_ZERO if counts[name] != 0] + unrefused(attacks)
    if tests.returncode != 0:
        print(f"reliability: FAILED (pytest exit code {tests.returncode})")
        return tests.returncode
    if bad:
        print(f"reliability: FAILED ({', '.join(bad)}: must be zero, or every attack refused)")
        return 1
    print("reliability: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
