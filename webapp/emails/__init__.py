"""Billing mail's pages: mail preferences, the one-click unsubscribe, and the update-card link.

What is sent and when lives in `webapp.billing.emails`; this package is what its links open.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from webapp.billing import emails
    from webapp.billing.low_balance import banner_shown
    from webapp.emails.views import bp

    app.register_blueprint(bp)
    # templates/emails/_low_balance_banner.html, on every page of a logged-in member.
    app.add_template_global(banner_shown, "low_balance_banner_shown")
    emails.init_app()  # the credits-low check before each commit that wrote credits
