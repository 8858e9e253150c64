"""Forgetting an address: what an account deletion does to the outbox.

Mail not yet sent to the address is dropped (it is kept as a row marked failed, with no
content, so its `dedupe_key` still stops a replayed cause from queueing it again); mail already
sent or kept keeps its date, subject and status as the record that it was sent, but loses the
address and the bodies (which may quote the address, names or links). Placeholder addresses of
deleted accounts (`erased_address`) are never queued to.
"""

from __future__ import annotations

from sqlalchemy import func, update

from webapp.extensions import db
from webapp.models import MailStatus, OutgoingMail

ERASED_DOMAIN = "deleted.invalid"  # RFC 2606: `.invalid` can never be delivered to
DROPPED_REASON = "dropped: the account was deleted"


def erased_address(user_id: int) -> str:
    """The unique, undeliverable address a deleted account's row carries instead of its own."""
    return f"deleted-{user_id}@{ERASED_DOMAIN}"


def is_erased_address(address: str) -> bool:
    return address.strip().lower().endswith("@" + ERASED_DOMAIN)


def forget_recipient(address: str, placeholder: str) -> int:
    """Drop unsent mail to `address` and anonymise the rest, in the caller's transaction (which
    commits it); returns the number of rows changed."""
    addressed = func.lower(OutgoingMail.to_address) == address.strip().lower()
    db.session.execute(
        update(OutgoingMail)
        .where(addressed, OutgoingMail.status == MailStatus.PENDING.value)
        .values(status=MailStatus.FAILED.value, last_error=DROPPED_REASON)
    )
    result = db.session.execute(
        update(OutgoingMail)
        .where(addressed)
        .values(to_address=placeholder, text_body="", html_body="")
    )
    return result.rowcount  # type: ignore[attr-defined]
