"""Mail: an outbox written with its cause, delivered by a worker (see README "Mail").

`queue_mail` (outbox.py) adds a message in the caller's transaction; `deliver_due` (delivery.py)
sends due messages through SMTP, or keeps them for the dev mailbox (views.py) when no SMTP
server is configured; `flask mail …` (cli.py) runs the worker.
"""

from __future__ import annotations

import logging

from flask import Flask, current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from webapp.mail.delivery import deliver_due
from webapp.mail.outbox import QUEUED_FLAG, MailMeta, queue_mail, render_mail

__all__ = ["MailMeta", "deliver_due", "init_app", "queue_mail", "render_mail"]

log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    from webapp.mail import cli, views

    app.cli.add_command(cli.mail_cli)
    # The dev mailbox follows the sandbox's rule: only while no real Stripe key is configured
    # (production refuses to start without one), so it never exists on a live site.
    if not app.config["STRIPE_SECRET_KEY"] and app.config["APP_ENV"] != "production":
        app.register_blueprint(views.bp)
    if not event.contains(Session, "after_commit", _deliver_after_commit):
        event.listen(Session, "after_commit", _deliver_after_commit)
        event.listen(Session, "after_rollback", _forget_queued)


def _deliver_after_commit(session: Session) -> None:
    """Development: send what this transaction queued as soon as it is committed."""
    if not session.info.pop(QUEUED_FLAG, False) or not has_app_context():
        return
    if not current_app.config["MAIL_DELIVER_AFTER_COMMIT"]:
        return
    try:
        deliver_due()
    except SQLAlchemyError:
        # The cause is committed and its mail is in the outbox: the worker sends it later.
        log.exception("mail: delivery after commit failed; the worker will retry")


def _forget_queued(session: Session) -> None:
    session.info.pop(QUEUED_FLAG, None)
