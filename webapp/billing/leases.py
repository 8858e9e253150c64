"""Named locks with an expiry, for work that spans Stripe calls (so no transaction can hold it).

A lease is a row in `leases`. Taking it is one INSERT (or an UPDATE of an expired row), so the
database settles races between workers and hosts; a holder that dies lets it expire.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import delete, update

from webapp.database import insert_or_ignore
from webapp.extensions import db
from webapp.models import Lease
from webapp.models.base import utcnow

POLL_SECONDS = 0.05


class Busy(Exception):
    """Someone else holds the lease for longer than we may wait."""


@contextmanager
def lease(name: str, *, hold_seconds: float = 60.0, wait_seconds: float = 10.0) -> Iterator[None]:
    """Hold the lease `name` for the block; wait up to `wait_seconds` for it, else Busy.

    `hold_seconds` bounds how long a holder that died keeps others out; it must outlast the
    block (Stripe calls within one request are bounded well below it). Taking and releasing
    the lease commit the session: call it with nothing of yours half-written.
    """
    holder = secrets.token_hex(8)
    deadline = time.monotonic() + wait_seconds
    while not _take(name, holder, hold_seconds):
        if time.monotonic() >= deadline:
            raise Busy(name)
        time.sleep(POLL_SECONDS)
    try:
        yield
    finally:
        db.session.rollback()  # whatever the block left unfinished is not ours to commit
        db.session.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))
        db.session.commit()


def _take(name: str, holder: str, hold_seconds: float) -> bool:
    db.session.commit()  # no transaction of ours may be open while we wait
    now = utcnow()
    expires_at = now + timedelta(seconds=hold_seconds)
    taken = insert_or_ignore(
        Lease, {"name": name, "holder": holder, "expires_at": expires_at}, ["name"]
    )
    if not taken:
        result = db.session.execute(
            update(Lease)
            .where(Lease.name == name, Lease.expires_at < now)
            .values(holder=holder, expires_at=expires_at)
        )
        taken = result.rowcount == 1  # type: ignore[attr-defined]
    db.session.commit()
    return taken


def delete_expired(older_than: timedelta = timedelta(hours=1)) -> int:
    """Remove leases that expired more than `older_than` ago (their holders are long gone: a
    taker would have overwritten the row anyway); how many went. Commits."""
    cutoff = utcnow() - older_than
    result = db.session.execute(delete(Lease).where(Lease.expires_at < cutoff))
    db.session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]
