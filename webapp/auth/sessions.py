"""Session versions: how logging out, a password change or a deletion end every session.

Each user row has a `session_version`. Every login session stores it beside the user id
(`User.get_id()` is "<id>:<version>", which Flask-Login keeps in the session and in a remember
cookie), and every API access token carries it as its `ver` claim. Each request compares the
two and treats a mismatch as logged out / 401. Bumping the version therefore ends all of a
user's sessions and tokens at once, on every worker, at their next request: a bump is a commit
to `users`, which the member cache's change feed reports to every worker (PostgreSQL NOTIFY,
SQLite data_version). API keys are separate credentials with their own revocation and are not
affected. The API's refresh-token families (webapp/api/refresh_tokens.py) remember the version
they were started at, so a bump ends them too; each bump also marks them revoked.

Logging out bumps the version, so "Log out" logs the user out everywhere (every browser and
every access token), which is what a person who suspects a stolen cookie needs.
"""

from __future__ import annotations

from typing import Any, TypeGuard

from sqlalchemy import select, update
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.util import identity_key

from webapp import member_cache
from webapp.api.refresh_tokens import revoke_user_families
from webapp.extensions import db
from webapp.models import User


def parse_session_id(value: str) -> tuple[int, int] | None:
    """(user id, version) of a `User.get_id()` a session stored; None for anything else (such as
    the bare ids of cookies written before versions existed: those sessions end)."""
    user_id, sep, version = value.partition(":")
    if not sep or not _is_small_number(user_id) or not _is_small_number(version):
        return None
    return int(user_id), int(version)


def _is_small_number(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 18


def is_current(columns: dict[str, Any] | None, version: int) -> TypeGuard[dict[str, Any]]:
    """Whether a user row (as columns) still accepts sessions issued at `version`: the version
    matches and the account is not deactivated."""
    return (
        columns is not None
        and columns["session_version"] == version
        and columns.get("deactivated_at") is None
    )


def user_columns(user_id: int, version: int) -> dict[str, Any] | None:
    """The user's row as columns, from the member cache (shared by log-in sessions and API
    access tokens): a request that names a user costs no query while their row is unchanged."""
    columns = member_cache.cached(user_id, "user row", lambda: _user_columns(user_id))
    if columns is not None and columns["session_version"] < version:
        # A newer session than the cached row: the row was bumped and the user logged in again
        # on another worker, whose change this worker has not heard of yet. Ask the database.
        columns = _user_columns(user_id)
    return columns


def _user_columns(user_id: int) -> dict[str, Any] | None:
    row = db.session.execute(select(User.__table__).where(User.id == user_id)).mappings().first()
    return dict(row) if row else None


def attach_user(columns: dict[str, Any]) -> User:
    """The User of `columns`, in this request's database session without a SELECT."""
    # Flask-Login loads the user lazily, at the first `current_user` (often a template rendered
    # late in a view). If the view already loaded the row, and maybe changed it, that object is
    # the user: merging the cached copy onto it would put the old values back.
    present = db.session.identity_map.get(identity_key(User, columns["id"]))
    if present is not None:
        return present
    # Rebuild the row as if just loaded (no attribute counts as changed) and attach it without
    # a SELECT, so views that update the user still work through the session. `add` of a
    # detached object attaches that very object: what `merge(load=False)` did, at a third of
    # the cost (profiled on the logged-in pages).
    user = User(**columns)
    make_transient_to_detached(user)
    db.session.add(user)
    return user


def end_sessions(user_id: int) -> None:
    """End every session and access token of the user (log-out everywhere; before a deletion)."""
    # One atomic UPDATE: two concurrent bumps both count, and no stale read can undo one.
    db.session.execute(
        update(User).where(User.id == user_id).values(session_version=User.session_version + 1)
    )
    revoke_user_families(user_id)
    db.session.commit()


def change_password(user: User, new_password: str) -> None:
    """Set a new password and end every session and token issued under the old one.

    The caller's own session ends too; a view that wants to keep it calls `login_user(user)`
    afterwards (the user object is refreshed with the new version).
    """
    user.set_password(new_password)
    user.session_version = User.session_version + 1
    revoke_user_families(user.id)
    db.session.commit()
    db.session.refresh(user)
