"""The clean-up job: lapsed checkouts marked expired (never deleted), dead refresh-token families
deleted whole, a family with one usable token kept whole, old leases and job runs deleted."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from webapp.api.refresh_tokens import hash_token, rotate, start_family
from webapp.extensions import db
from webapp.jobs.scheduled import delete_expired_rows
from webapp.models import CheckoutSession, JobRun, Lease, RefreshToken, RefreshTokenFamily, User
from webapp.models.base import utcnow


def checkout(user_id: int, session_id: str, expires_in: timedelta, status: str = "open"):
    return CheckoutSession(
        user_id=user_id,
        stripe_session_id=session_id,
        plan_id="starter",
        cycle="monthly",
        status=status,
        url="https://checkout.example/" + session_id,
        expires_at=utcnow() + expires_in,
    )


def test_cleanup_keeps_what_is_still_usable(app, user_id):
    with app.app_context():
        now = utcnow()
        db.session.add_all(
            [
                checkout(user_id, "cs_lapsed", -timedelta(hours=1)),
                checkout(user_id, "cs_open", timedelta(hours=1)),
                checkout(user_id, "cs_paid", -timedelta(days=3), status="complete"),
                Lease(name="old", holder="x", expires_at=now - timedelta(hours=2)),
                Lease(name="held", holder="y", expires_at=now + timedelta(minutes=1)),
                JobRun(
                    job="mail.deliver_due",
                    slot=now - timedelta(days=30),
                    host="h",
                    started_at=now - timedelta(days=30),
                ),
                JobRun(
                    job="mail.deliver_due",
                    slot=now - timedelta(days=20),
                    host="h",
                    started_at=now - timedelta(days=20),
                ),
            ]
        )
        db.session.commit()
        user = db.session.get(User, user_id)
        dead = start_family(user)
        alive = start_family(user)
        rotate(alive.refresh)  # its first token is now a revoked parent of a live child
        dead_family = db.session.scalar(
            select(RefreshToken.family_id).where(
                RefreshToken.token_hash == hash_token(dead.refresh)
            )
        )
        # Age every family past a token's lifetime; the dead family's tokens have expired, the
        # other family's newest token has not (its parent has).
        old = now - timedelta(days=30)
        db.session.execute(update(RefreshTokenFamily).values(created_at=old))
        db.session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == dead_family)
            .values(expires_at=now - timedelta(seconds=1))
        )
        parent_of_live = db.session.scalar(
            select(RefreshToken.id).where(
                RefreshToken.family_id != dead_family, RefreshToken.parent_id.is_(None)
            )
        )
        db.session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == parent_of_live)
            .values(expires_at=now - timedelta(seconds=1))
        )
        db.session.commit()

        summary = delete_expired_rows()

        assert summary.startswith("1 checkouts marked expired, 1 refresh-token families, 1 leases")
        statuses = dict(
            db.session.execute(
                select(CheckoutSession.stripe_session_id, CheckoutSession.status)
            ).all()
        )
        assert statuses == {"cs_lapsed": "expired", "cs_open": "open", "cs_paid": "complete"}
        remaining = set(db.session.scalars(select(RefreshTokenFamily.id)))
        assert dead_family not in remaining and len(remaining) == 1
        assert len(db.session.scalars(select(RefreshToken)).all()) == 2  # the live family whole
        assert set(db.session.scalars(select(Lease.name))) == {"held"}
        # The job's newest run is kept whatever its age (status reads it).
        assert (
            len(db.session.scalars(select(JobRun).where(JobRun.job == "mail.deliver_due")).all())
            == 1
        )
