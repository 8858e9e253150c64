"""Spending credits: our generation service debits a member's balance, and gives a failed
generation's credits back.

Invariants (README, "Spending credits"), enforced here and nowhere else:

- **Never below zero through usage.** A debit locks the member's row (the lock every ledger
  writer takes first: PostgreSQL `SELECT … FOR UPDATE`, SQLite's write lock), then reads the
  balance from the ledger and writes the entry in the same transaction, so concurrent debits
  take turns and only those the balance covers succeed. (Money going back may still take the
  balance below zero, as before: that is the refund rule, not usage.)
- **Each idempotency key debits at most once**, forever: the entry's unique `grant_key` is
  `usage:<key>`. The same key with the same request answers what the first answer said (the
  entry keeps the balance after it); with a different request it is refused
  (`idempotency_key_reused`). A request refused for want of credits writes nothing, so the
  same key may be retried once the balance allows.
- **A reversal gives a debit back once** (`usage-reversal:<key>`), as a positive `usage` entry:
  `totalUsed` is net usage, and `totalPurchased` counts only credits bought.
- Deleted and deactivated accounts cannot spend (`account_inactive`). A deleted account gets
  nothing back either (nothing more is granted to it, as with plan credits); a deactivated
  one does.

Credits are one pool: plan credits and pack credits never expire, so which goes first changes
nothing, and a debit takes from the single balance.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from webapp.billing.base import BillingError
from webapp.billing.credits import add_entry
from webapp.database import lock_row
from webapp.extensions import db
from webapp.models import CreditEntry, User

USAGE_PREFIX = "usage:"
REVERSAL_PREFIX = "usage-reversal:"


class UserNotFound(BillingError):
    code = "user_not_found"
    status = 404


class AccountInactive(BillingError):
    code = "account_inactive"
    status = 409


class IdempotencyKeyReused(BillingError):
    code = "idempotency_key_reused"
    status = 409


class UsageNotFound(BillingError):
    code = "usage_not_found"
    status = 404


class InsufficientCredits(BillingError):
    code = "insufficient_credits"
    status = 402

    def __init__(self, balance: int, needed: int) -> None:
        super().__init__(f"The balance ({balance}) does not cover {needed} credits.")
        self.balance, self.needed = balance, needed


@dataclass(frozen=True)
class UsageRequest:
    user_id: int
    amount: int  # credits to take, positive
    description: str
    site_id: str | None
    idempotency_key: str


@dataclass(frozen=True)
class LedgerAnswer:
    """What a debit or a reversal wrote (or had written: `replayed`)."""

    entry: CreditEntry
    balance: int  # right after the entry
    replayed: bool


def balance_of(user_id: int) -> int:
    total = db.session.scalar(
        select(func.coalesce(func.sum(CreditEntry.amount), 0)).where(CreditEntry.user_id == user_id)
    )
    return int(total or 0)


def _entry(grant_key: str) -> CreditEntry | None:
    return db.session.scalar(select(CreditEntry).where(CreditEntry.grant_key == grant_key))


def _same_request(entry: CreditEntry, request: UsageRequest) -> bool:
    return (entry.user_id, -entry.amount, entry.description, entry.site_id) == (
        request.user_id,
        request.amount,
        request.description,
        request.site_id,
    )


def _replay(entry: CreditEntry, request: UsageRequest) -> LedgerAnswer:
    if not _same_request(entry, request):
        raise IdempotencyKeyReused(
            "This idempotencyKey was used for a different request; use a new key."
        )
    return LedgerAnswer(entry, _balance_after(entry), replayed=True)


def _balance_after(entry: CreditEntry) -> int:
    return entry.balance_after if entry.balance_after is not None else balance_of(entry.user_id)


def record_usage(request: UsageRequest) -> LedgerAnswer:
    """Debit `request.amount` credits once per idempotency key, never below zero. Commits."""
    key = USAGE_PREFIX + request.idempotency_key
    # The member's lock first, before reading anything this decides on (see lock_row).
    lock_row(User, request.user_id)
    existing = _entry(key)
    if existing is not None:
        db.session.rollback()
        return _replay(existing, request)
    user = db.session.get(User, request.user_id)
    if user is None:
        db.session.rollback()
        raise UserNotFound("No user has this userId.")
    if user.deleted_at is not None or user.deactivated_at is not None:
        db.session.rollback()
        raise AccountInactive("This account is deleted or deactivated: it cannot spend credits.")
    balance = balance_of(request.user_id)
    if balance < request.amount:
        db.session.rollback()
        raise InsufficientCredits(balance, request.amount)
    written = add_entry(
        user_id=request.user_id,
        amount=-request.amount,
        grant_key=key,
        description=request.description,
        entry_type="usage",
        kind="usage",
        site_id=request.site_id,
        balance_after=balance - request.amount,
    )
    if not written:
        # Another member's request took this key between our read and our insert (we hold
        # only our member's lock): it is theirs, so this request is a different one.
        db.session.rollback()
        existing = _entry(key)
        assert existing is not None  # the unique key that stopped us is there
        return _replay(existing, request)
    entry = _entry(key)
    assert entry is not None
    db.session.commit()
    return LedgerAnswer(entry, balance - request.amount, replayed=False)


def reverse_usage(idempotency_key: str) -> LedgerAnswer:
    """Give back the credits the debit with this key took, once. Commits."""
    original = _entry(USAGE_PREFIX + idempotency_key)
    if original is None:
        db.session.rollback()
        raise UsageNotFound("No usage was recorded with this idempotencyKey.")
    user_id, key = original.user_id, REVERSAL_PREFIX + idempotency_key
    db.session.rollback()  # a fresh transaction that takes the lock before it reads
    lock_row(User, user_id)
    existing = _entry(key)
    if existing is not None:
        db.session.rollback()
        return LedgerAnswer(existing, _balance_after(existing), replayed=True)
    original = _entry(USAGE_PREFIX + idempotency_key)
    assert original is not None  # ledger entries are never deleted
    user = db.session.get(User, user_id)
    if user is None or user.deleted_at is not None:
        db.session.rollback()
        raise AccountInactive("This account is deleted: nothing more is credited to it.")
    balance = balance_of(user_id) - original.amount
    add_entry(
        user_id=user_id,
        amount=-original.amount,
        grant_key=key,
        description=f"Reversed: {original.description}",
        entry_type="usage",
        kind="reversal",
        site_id=original.site_id,
        balance_after=balance,
    )
    entry = _entry(key)
    assert entry is not None
    db.session.commit()
    return LedgerAnswer(entry, balance, replayed=False)


# --- the history -------------------------------------------------------------------------------

HISTORY_PER_PAGE = 20
HISTORY_MAX_PER_PAGE = 100


@dataclass(frozen=True)
class CreditPage:
    entries: list[CreditEntry]
    total: int  # entries of the whole history (of that type)
    offset: int

    @property
    def has_more(self) -> bool:
        return self.offset + len(self.entries) < self.total


def credit_history(
    user_id: int, *, limit: int = HISTORY_PER_PAGE, offset: int = 0, entry_type: str | None = None
) -> CreditPage:
    """A member's ledger, newest first, `limit` entries from `offset`, of one type or all."""
    shown = [CreditEntry.user_id == user_id]
    if entry_type is not None:
        shown.append(CreditEntry.type == entry_type)
    total = db.session.scalar(select(func.count()).select_from(CreditEntry).where(*shown)) or 0
    rows = db.session.scalars(
        select(CreditEntry)
        .where(*shown)
        # The id breaks ties of the same instant so pages never overlap.
        .order_by(CreditEntry.created_at.desc(), CreditEntry.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return CreditPage(list(rows), total, offset)
