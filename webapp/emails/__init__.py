"""Billing mail's pages: mail preferences, the one-click unsubscribe, and the update-card link.

What is sent and when lives in `webapp.billing.emails`; this package is what its links open.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from webapp.billing import emails
    from webapp.emails.views import bp

    app.register_blueprint(bp)
    emails.init_app()  # the credits-low check before each commit that wrote credits
