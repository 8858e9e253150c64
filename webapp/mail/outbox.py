"""Queueing mail: render a message from `templates/email/` and add it to the outbox.

`queue_mail` writes in the caller's transaction and never commits: a message exists exactly when
the event that caused it committed, and a retried event (same `dedupe_key`) queues nothing new.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from flask import current_app, has_request_context, render_template

from webapp.database import insert_or_ignore
from webapp.extensions import db
from webapp.mail.erasure import is_erased_address
from webapp.models import MailStatus, OutgoingMail
from webapp.models.base import utcnow

# Set on the session when it queued mail; `webapp.mail` delivers after its commit (development).
QUEUED_FLAG = "mail_queued"


@dataclass(frozen=True)
class MailMeta:
    """Who a message is for and what kind it is; `unsubscribe_url` for a non-essential kind.

    With an unsubscribe URL the message carries RFC 8058's one-click headers
    (`List-Unsubscribe` + `List-Unsubscribe-Post`), and its templates get `unsubscribe_url`.
    """

    user_id: int
    kind: str
    unsubscribe_url: str | None = None

    def headers(self) -> dict[str, str] | None:
        if not self.unsubscribe_url:
            return None
        return {
            "List-Unsubscribe": f"<{self.unsubscribe_url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


def url_context() -> AbstractContextManager[Any]:
    """Where `public_url` works: the current request, or one on PUBLIC_BASE_URL outside any
    (CLI, workers, webhooks processed in the background)."""
    if has_request_context():
        return nullcontext()
    return current_app.test_request_context(base_url=current_app.config["PUBLIC_BASE_URL"])


def render_mail(template: str, subject: str, **context: Any) -> RenderedMail:
    """Render `email/<template>.txt` and `.html` with `context`.

    Outside a request (CLI, workers) a request context on PUBLIC_BASE_URL stands in, so
    templates build absolute links with `public_url` in the same way everywhere.
    """
    with url_context():
        context = {"subject": subject, **context}
        return RenderedMail(
            subject=subject,
            text=render_template(f"email/{template}.txt", **context),
            html=render_template(f"email/{template}.html", **context),
        )


def queue_mail(
    to: str,
    template: str,
    subject: str,
    dedupe_key: str,
    *,
    meta: MailMeta | None = None,
    **context: Any,
) -> bool:
    """Add a message to the outbox in the current transaction; False if `dedupe_key` was queued."""
    if is_erased_address(to):
        return False  # a deleted account: there is no one to write to
    if meta is not None and meta.unsubscribe_url:
        context["unsubscribe_url"] = meta.unsubscribe_url
    mail = render_mail(template, subject, **context)
    inserted = insert_or_ignore(
        OutgoingMail,
        {
            "to_address": to,
            "subject": mail.subject,
            "text_body": mail.text,
            "html_body": mail.html,
            "dedupe_key": dedupe_key,
            "kind": meta.kind if meta else None,
            "user_id": meta.user_id if meta else None,
            "headers": meta.headers() if meta else None,
            "status": MailStatus.PENDING.value,
            "attempts": 0,
            "next_attempt_at": utcnow(),
            "created_at": utcnow(),
        },
        ["dedupe_key"],
    )
    if inserted:
        db.session.info[QUEUED_FLAG] = True
    return inserted
