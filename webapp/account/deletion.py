"""Deleting an account: billing closed at Stripe first, then one local transaction.

The order is what makes failure safe (README, "Deleting an account"):

1. At Stripe (`billing.closing`, network only, no transaction of ours open): open checkouts
   expired, every subscription that is not over cancelled at once without proration, the
   customer deleted. If Stripe fails, nothing of ours has changed and the person is told so;
   every step is idempotent, so trying again is safe.
2. Here, in one transaction: the subscriptions stored as Stripe now has them; the row
   anonymised (a unique undeliverable address, a password hash no password matches, no
   verification or sign-up notice), `deleted_at` and `deactivated_at` set and the session
   version bumped (every session and access token ends); API keys revoked; mail to the old
   address dropped or anonymised; one confirmation queued to it. If this fails after Stripe
   succeeded, the person is still logged in and a retry finds Stripe done and finishes here.

Subscriptions, invoices, the credits ledger and the webhook ledger stay, as accounting records,
attached to the anonymised row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import delete, select

from webapp.api.keys import revoke_all_keys
from webapp.api.refresh_tokens import revoke_user_families
from webapp.billing.closing import apply_closed_billing, close_billing_account
from webapp.billing.leases import Busy, lease
from webapp.database import lock_row
from webapp.extensions import db
from webapp.mail import queue_mail
from webapp.mail.erasure import erased_address, forget_recipient
from webapp.models import CompanyDetails, User
from webapp.models.base import utcnow

log = logging.getLogger(__name__)

# Werkzeug's hashes read "method$salt$hash": one without a "$" never matches any password.
UNUSABLE_PASSWORD_HASH = "!account-deleted"


class DeletionBusy(Exception):
    """Another deletion or checkout of the same account is under way."""


@dataclass(frozen=True)
class Deletion:
    user_id: int
    subscriptions_cancelled: list[str]
    already_deleted: bool = False


def delete_account(user_id: int) -> Deletion:
    """Delete the account (see the module docstring). Raises billing's PaymentProviderError
    when Stripe fails (nothing of ours changed), DeletionBusy when a checkout of the account is
    starting."""
    if _deleted(user_id):
        return Deletion(user_id, [], already_deleted=True)
    try:
        # The checkout lease: no checkout can start between closing billing and the commit.
        with lease(f"checkout:{user_id}"):
            cancelled = close_billing_account(user_id)
            _erase(user_id, cancelled)
    except Busy:
        raise DeletionBusy("A checkout for this account is starting. Try again.") from None
    ids = [facts.id for facts in cancelled]
    log.info("account %s deleted; subscriptions cancelled at once: %s", user_id, ids or "none")
    return Deletion(user_id, ids)


def _deleted(user_id: int) -> bool:
    deleted_at = db.session.scalar(select(User.deleted_at).where(User.id == user_id))
    return deleted_at is not None


def _erase(user_id: int, cancelled: list) -> None:
    """The local half, one transaction."""
    lock_row(User, user_id)
    user = db.session.scalars(
        select(User).where(User.id == user_id).execution_options(populate_existing=True)
    ).one()
    if user.deleted_at is not None:
        db.session.commit()  # a concurrent deletion finished first
        return
    old_address, placeholder, now = user.email, erased_address(user_id), utcnow()
    apply_closed_billing(cancelled)
    revoke_all_keys(user_id)
    # The company's address and VAT number go with the account (Stripe's customer is deleted).
    db.session.execute(delete(CompanyDetails).where(CompanyDetails.user_id == user_id))
    forget_recipient(old_address, placeholder)
    user.email = placeholder
    user.password_hash = UNUSABLE_PASSWORD_HASH
    user.email_verified_at = None
    user.signup_attempted_at = None
    user.deleted_at = now
    user.deactivated_at = user.deactivated_at or now
    user.session_version = User.session_version + 1
    revoke_user_families(user_id)
    queue_mail(
        old_address,
        "account_deleted",
        "Your LLMGen account was deleted",
        dedupe_key=f"account-deleted:{user_id}",
        deleted_at=now,
        cancelled=bool(cancelled),
    )
    db.session.commit()
