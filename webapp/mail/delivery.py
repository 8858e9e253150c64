"""Delivering the outbox: claim due messages, send them through SMTP (or keep them), record how.

SMTP goes through the standard library's `smtplib` and `email.message.EmailMessage`: the worker is
synchronous, sends one message at a time and needs STARTTLS, implicit TLS and login, all of which
the stdlib does and keeps patched with Python itself; a wrapper library would add a dependency
and nothing this module uses.

Claims are safe under concurrency: a claim is one conditional UPDATE that pushes the row's
`next_attempt_at` a lease ahead (PostgreSQL picks the row with FOR UPDATE SKIP LOCKED, so workers
never queue behind each other), committed before sending. Two workers never hold the same row;
one that dies mid-send leaves the row to be retried when its lease ends.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from webapp.extensions import db
from webapp.models import MailStatus, OutgoingMail
from webapp.models.base import utcnow

log = logging.getLogger(__name__)

# Wait after the 1st, 2nd, … failed attempt; after the last one the message is marked failed.
BACKOFF = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=12),
)
# How long a claimed message is left to its worker: well beyond one SMTP conversation.
LEASE = timedelta(minutes=5)
SMTP_TIMEOUT_SECONDS = 30


class MailDeliveryError(Exception):
    """The SMTP server could not be reached or did not accept the message."""


@dataclass
class DeliveryReport:
    sent: list[int] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return len(self.sent) + len(self.kept) + len(self.retrying) + len(self.failed)


def deliver_due(limit: int = 50) -> DeliveryReport:
    """Send up to `limit` due messages, one claim at a time, in sessions of its own."""
    report = DeliveryReport()
    transport = SmtpTransport() if current_app.config["MAIL_HOST"] else KeptTransport()
    with Session(db.engine, expire_on_commit=False) as session, transport:
        for _ in range(limit):
            mail = _claim_next(session)
            if mail is not None:
                _deliver(session, transport, mail, report)
            elif not _any_due(session):
                break
            # else another worker claimed the row this claim picked: try the next one.
    return report


def _claim_next(session: Session) -> OutgoingMail | None:
    now = utcnow()
    oldest_due = (
        select(OutgoingMail.id)
        .where(OutgoingMail.status == MailStatus.PENDING, OutgoingMail.next_attempt_at <= now)
        .order_by(OutgoingMail.next_attempt_at, OutgoingMail.id)
        .limit(1)
    )
    if session.get_bind().dialect.name == "postgresql":
        oldest_due = oldest_due.with_for_update(skip_locked=True)
    due = oldest_due.scalar_subquery()
    claimed = session.execute(
        update(OutgoingMail)
        .where(
            OutgoingMail.id == due,
            # Checked again on the row as this UPDATE finds it: a claim another worker
            # committed in the meantime has pushed `next_attempt_at` ahead.
            OutgoingMail.status == MailStatus.PENDING,
            OutgoingMail.next_attempt_at <= now,
        )
        .values(next_attempt_at=now + LEASE, attempts=OutgoingMail.attempts + 1)
        .returning(OutgoingMail.id)
    ).scalar()
    session.commit()
    return None if claimed is None else session.get(OutgoingMail, claimed)


def _any_due(session: Session) -> bool:
    due = select(OutgoingMail.id).where(
        OutgoingMail.status == MailStatus.PENDING, OutgoingMail.next_attempt_at <= utcnow()
    )
    found = session.scalar(due.limit(1)) is not None
    session.commit()
    return found


def _deliver(session: Session, transport: Transport, mail: OutgoingMail, report: DeliveryReport):
    try:
        status = transport.send(mail)
    except MailDeliveryError as exc:
        _schedule_retry(session, mail, str(exc), report)
        return
    mail.status, mail.sent_at, mail.last_error = status, utcnow(), None
    session.commit()
    (report.kept if status == MailStatus.KEPT else report.sent).append(mail.id)


def _schedule_retry(session: Session, mail: OutgoingMail, error: str, report: DeliveryReport):
    mail.last_error = error[:2000]
    if mail.attempts > len(BACKOFF):
        mail.status = MailStatus.FAILED
        report.failed.append(mail.id)
        log.error("mail %s to %s failed for good: %s", mail.id, mail.to_address, error)
    else:
        mail.next_attempt_at = utcnow() + BACKOFF[mail.attempts - 1]
        report.retrying.append(mail.id)
        log.warning(
            "mail %s to %s not sent (attempt %s): %s",
            mail.id,
            mail.to_address,
            mail.attempts,
            error,
        )
    session.commit()


class Transport:
    """Where claimed messages go; a context manager around a batch."""

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def send(self, mail: OutgoingMail) -> MailStatus:
        raise NotImplementedError


class KeptTransport(Transport):
    """No SMTP configured: the message stays on the dev mailbox and goes to the log."""

    def send(self, mail: OutgoingMail) -> MailStatus:
        log.info(
            "mail kept (no SMTP configured; see /sandbox/mailbox)\nTo: %s\nSubject: %s\n\n%s",
            mail.to_address,
            mail.subject,
            mail.text_body,
        )
        return MailStatus.KEPT


class SmtpTransport(Transport):
    """One SMTP connection per batch, opened on first use and again after an error."""

    def __init__(self) -> None:
        self.config = current_app.config
        self.connection: smtplib.SMTP | None = None

    def __exit__(self, *exc_info: object) -> None:
        self._close()

    def send(self, mail: OutgoingMail) -> MailStatus:
        try:
            connection = self.connection or self._connect()
            connection.send_message(build_message(mail, self.config["MAIL_FROM"]))
        except (smtplib.SMTPException, OSError) as exc:
            self._close()  # the conversation may be half-way; start the next one afresh
            raise MailDeliveryError(f"{type(exc).__name__}: {exc}") from exc
        return MailStatus.SENT

    def _connect(self) -> smtplib.SMTP:
        host, port = self.config["MAIL_HOST"], self.config["MAIL_PORT"]
        context = ssl.create_default_context()
        if self.config["MAIL_USE_SSL"]:
            connection: smtplib.SMTP = smtplib.SMTP_SSL(
                host, port, timeout=SMTP_TIMEOUT_SECONDS, context=context
            )
        else:
            connection = smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT_SECONDS)
            if self.config["MAIL_USE_TLS"]:
                connection.starttls(context=context)
        if self.config["MAIL_USERNAME"]:
            connection.login(self.config["MAIL_USERNAME"], self.config["MAIL_PASSWORD"])
        self.connection = connection
        return connection

    def _close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.quit()
            except (smtplib.SMTPException, OSError):
                self.connection.close()
            self.connection = None


def build_message(mail: OutgoingMail, sender: str) -> EmailMessage:
    """The MIME message: a plain-text part and its HTML alternative."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.to_address
    message["Subject"] = mail.subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(idstring=f"outbox.{mail.id}")
    for name, value in (mail.headers or {}).items():
        message[name] = value
    message.set_content(mail.text_body)
    message.add_alternative(mail.html_body, subtype="html")
    return message
