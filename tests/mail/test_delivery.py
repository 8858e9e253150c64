"""Delivering the outbox through a real SMTP server: retries, backoff, never twice."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import select, update

from tests.mail.conftest import free_port
from webapp.extensions import db
from webapp.mail import deliver_due, queue_mail
from webapp.mail.delivery import BACKOFF
from webapp.models import MailStatus, OutgoingMail
from webapp.models.base import utcnow


def _queue(app, count: int = 1) -> None:
    with app.app_context():
        for number in range(count):
            queue_mail(f"user{number}@example.com", "test", f"Message {number}", f"cause:{number}")
        db.session.commit()


def _mail(app) -> OutgoingMail:
    with app.app_context():
        return db.session.scalar(select(OutgoingMail))


def _time_passes(app, delta: timedelta) -> None:
    """Move every scheduled attempt `delta` earlier, as if that much time had gone by."""
    with app.app_context():
        for mail in db.session.scalars(select(OutgoingMail)):
            mail.next_attempt_at -= delta
        db.session.commit()


def test_a_refused_first_attempt_is_retried_after_backoff_and_delivered_once(app, smtp):
    smtp.refusals = 1
    _queue(app)
    with app.app_context():
        report = deliver_due()
    assert report.retrying and not report.sent
    mail = _mail(app)
    assert mail.status == MailStatus.PENDING and mail.attempts == 1
    assert "451" in mail.last_error
    wait = mail.next_attempt_at - utcnow()
    assert BACKOFF[0] - timedelta(seconds=5) < wait <= BACKOFF[0]

    with app.app_context():
        assert deliver_due().handled == 0  # not due yet
    _time_passes(app, BACKOFF[0])
    with app.app_context():
        assert len(deliver_due().sent) == 1
        assert deliver_due().handled == 0
    _time_passes(app, timedelta(days=2))
    with app.app_context():
        assert deliver_due().handled == 0  # sent is final
    assert len(smtp.received) == 1
    mail = _mail(app)
    assert (mail.status, mail.attempts, mail.last_error) == (MailStatus.SENT, 2, None)
    assert mail.sent_at is not None


def test_a_message_every_attempt_fails_for_is_marked_failed_with_its_error(app, smtp):
    smtp.refusals = len(BACKOFF) + 1
    _queue(app)
    for _attempt in range(len(BACKOFF)):
        with app.app_context():
            assert deliver_due().retrying
        _time_passes(app, timedelta(days=1))
    with app.app_context():
        assert deliver_due().failed
    mail = _mail(app)
    assert (mail.status, mail.attempts) == (MailStatus.FAILED, len(BACKOFF) + 1)
    assert "451" in mail.last_error
    assert smtp.received == []


def test_an_unreachable_server_is_an_error_to_retry_not_a_crash(app, smtp):
    app.config["MAIL_PORT"] = free_port()  # nothing listens there
    _queue(app)
    with app.app_context():
        assert deliver_due().retrying
    assert "ConnectionRefusedError" in _mail(app).last_error


def test_two_deliverers_at_once_send_each_message_once(app, smtp):
    """Two workers race over the same due messages (row locks skipped on PostgreSQL, a
    conditional claim on SQLite): every message arrives exactly once."""
    count = 40
    _queue(app, count)
    start = threading.Barrier(2)
    reports = []

    def worker() -> None:
        with app.app_context():
            start.wait()
            reports.append(deliver_due(limit=count))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    subjects = sorted(str(message["Subject"]) for message in smtp.received)
    assert subjects == sorted(f"Message {number}" for number in range(count))
    sent_ids = [mail_id for report in reports for mail_id in report.sent]
    assert len(sent_ids) == len(set(sent_ids)) == count
    with app.app_context():
        statuses = set(db.session.scalars(select(OutgoingMail.status)))
    assert statuses == {MailStatus.SENT}


def test_a_claim_held_by_a_worker_is_not_taken_by_another(app, smtp):
    """A message a worker claimed (its lease pushed ahead) waits until the lease ends."""
    _queue(app)
    with app.app_context():
        db.session.execute(
            update(OutgoingMail).values(next_attempt_at=utcnow() + timedelta(minutes=4))
        )
        db.session.commit()
        assert deliver_due().handled == 0
    assert smtp.received == []


def test_flask_mail_deliver_runs_one_round(app, runner, smtp):
    _queue(app, 2)
    result = runner.invoke(args=["mail", "deliver"])
    assert result.exit_code == 0, result.output
    assert "sent 2, kept 0, retrying 0, failed 0" in result.output
    assert len(smtp.received) == 2
