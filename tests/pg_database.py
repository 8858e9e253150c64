"""Throwaway PostgreSQL databases on a shared server: a unique name each time, created here and
dropped here, so a command never drops a database it did not create.

    python tests/pg_database.py [--server URL] [--prefix NAME] -- COMMAND …

runs COMMAND with DATABASE_URL naming a fresh database (`<prefix>_<time>_<pid>_<random>`) and
drops that database afterwards (`make test-postgres`). PG_SERVER (or --server) names the server:
a SQLAlchemy URL whose database part, if any, is ignored (default postgres@127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy.engine import make_url

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


def unique_name(prefix: str) -> str:
    """A database name no other run (or engineer) on the server is using."""
    return f"{prefix}_{int(time.time())}_{os.getpid()}_{secrets.token_hex(3)}"


def _admin(server: str) -> str:
    url = make_url(server.replace("postgres://", "postgresql://", 1))
    return url.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )


@contextmanager
def scratch_database(server: str = DEFAULT_SERVER, prefix: str = "scratch") -> Iterator[str]:
    """Create a uniquely named database (CREATE fails rather than reuse one) and yield its
    SQLAlchemy URL; drop it on the way out, whatever happened."""
    name = unique_name(prefix)
    with psycopg.connect(_admin(server), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(server.replace("postgres://", "postgresql://", 1))
        yield url.set(drivername="postgresql+psycopg", database=name).render_as_string(
            hide_password=False
        )
    finally:
        with psycopg.connect(_admin(server), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default=os.environ.get("PG_SERVER") or DEFAULT_SERVER)
    parser.add_argument("--prefix", default="test")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    with scratch_database(args.server, args.prefix) as url:
        print(f"pg_database: {make_url(url).database} (dropped afterwards)", flush=True)
        return subprocess.run(
            command, env={**os.environ, "DATABASE_URL": url}, check=False
        ).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
