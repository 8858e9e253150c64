"""The development mailbox: every message in the outbox, newest first, and each one opened.

Registered only where the Stripe sandbox's pages are (see `webapp.mail.init_app`).
"""

from __future__ import annotations

from flask import Blueprint, Response, render_template
from sqlalchemy import select

from webapp.extensions import db
from webapp.models import OutgoingMail

bp = Blueprint("mailbox", __name__, url_prefix="/sandbox/mailbox")

# The message's own HTML is shown in a sandboxed frame: no scripts, no access to our origin,
# only its inline styles; a click on a link may open it (as a mail client would).
FRAME_SANDBOX = (
    "allow-popups allow-popups-to-escape-sandbox allow-top-navigation-by-user-activation"
)
MESSAGE_HTML_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    f"frame-ancestors 'self'; sandbox {FRAME_SANDBOX}"
)
PAGE_SIZE = 100


@bp.get("/")
def index() -> str:
    messages = db.session.scalars(
        select(OutgoingMail).order_by(OutgoingMail.id.desc()).limit(PAGE_SIZE)
    ).all()
    return render_template("mailbox/index.html", messages=messages)


@bp.get("/<int:mail_id>")
def message(mail_id: int) -> str:
    mail = db.get_or_404(OutgoingMail, mail_id)
    return render_template("mailbox/message.html", mail=mail, frame_sandbox=FRAME_SANDBOX)


@bp.get("/<int:mail_id>/html")
def message_html(mail_id: int) -> Response:
    mail = db.get_or_404(OutgoingMail, mail_id)
    response = Response(opening_links_in_the_tab(mail.html_body), mimetype="text/html")
    # Set before the site's defaults (which only fill in what is missing): this document may be
    # framed by the mailbox page, and nothing else.
    response.headers["Content-Security-Policy"] = MESSAGE_HTML_POLICY
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


def opening_links_in_the_tab(html: str) -> str:
    """The message with its links aimed at the whole tab, as a mail client opens them: inside
    the frame they would lead to our own pages, which refuse to be framed."""
    base = '<base target="_top">'
    head = html.find("<head>")
    if head == -1:
        return base + html
    return html[: head + len("<head>")] + base + html[head + len("<head>") :]
