"""What an operator changes about an account from `flask users`: its role, and whether it may
be used at all. Each change is one transaction, and every change that takes access away ends
the user's sessions and access tokens in it (a session-version bump, see `sessions`).

Deactivation is not deletion: the row, the ledger, the invoices and the Stripe subscription stay
as they are (cancel the subscription at Stripe, or let the account delete itself, to stop
billing). A deactivated account cannot log in, use an access token or an API key; its API keys
are revoked, so reactivating it does not bring them back.
"""

from __future__ import annotations

from sqlalchemy import update

from webapp.api.keys import revoke_all_keys
from webapp.api.refresh_tokens import revoke_user_families
from webapp.extensions import db
from webapp.models import Role, User
from webapp.models.base import utcnow

# Lowest to highest: moving down this list takes access away.
ROLE_RANK = {Role.USER.value: 0, Role.MARKETING.value: 1, Role.ADMIN.value: 2}


class AccountDeactivated(Exception):
    """The credentials are right, but the account has been deactivated."""


def set_role(user: User, role: str) -> bool:
    """Give `user` the role; returns whether their sessions were ended (the role was lowered).

    A lowered role ends every session so no open page or token keeps what the old role allowed;
    the member cache drops the row at the commit either way (its change feed).
    """
    lowered = ROLE_RANK[role] < ROLE_RANK[user.role]
    values: dict[str, object] = {"role": role}
    if lowered:
        values["session_version"] = User.session_version + 1
    db.session.execute(update(User).where(User.id == user.id).values(**values))
    if lowered:
        revoke_user_families(user.id)
    db.session.commit()
    db.session.refresh(user)
    return lowered


def deactivate(user: User) -> int:
    """Deactivate the account, end its sessions and tokens and revoke its API keys (the number
    revoked is returned). Deactivating twice keeps the first date."""
    revoked = revoke_all_keys(user.id)
    db.session.execute(
        update(User)
        .where(User.id == user.id)
        .values(
            deactivated_at=user.deactivated_at or utcnow(),
            session_version=User.session_version + 1,
        )
    )
    revoke_user_families(user.id)
    db.session.commit()
    db.session.refresh(user)
    return revoked


def reactivate(user: User) -> None:
    """Let the account log in again (with its password; its old API keys stay revoked)."""
    db.session.execute(update(User).where(User.id == user.id).values(deactivated_at=None))
    db.session.commit()
    db.session.refresh(user)
