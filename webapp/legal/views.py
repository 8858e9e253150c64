"""The terms of service and the privacy notice: what a buyer agrees to at Checkout.

The terms describe what the code does, not a wish list: the plan-change policy comes from
`[plan_changes]` (the same words as the pricing page's FAQ), the plans and their credits from
the catalog, the grace period of a failed renewal from the configuration. A change to any of
them changes the page; a change to the wording itself moves `TERMS_UPDATED`.
"""

from __future__ import annotations

from datetime import date

from flask import Blueprint, current_app, render_template, request

from webapp.catalog import get_catalog
from webapp.public_pages import public_when_anonymous

bp = Blueprint("legal", __name__)

# The date the page shows as "Last updated". Checkout Sessions record when the buyer agreed
# (checkout_sessions.terms_accepted_at), so this date tells which wording they accepted.
TERMS_UPDATED = date(2026, 11, 29)
PRIVACY_UPDATED = date(2026, 11, 29)
FAQ_OPENING = "Yes, at any time from *Manage billing*. "


def _page_key() -> tuple[str]:
    return (request.path,)  # the legal pages read nothing else from the request


@bp.get("/terms")
@public_when_anonymous(_page_key)
def terms() -> str:
    catalog = get_catalog()
    plans = sorted(catalog.plans.values(), key=lambda plan: plan.monthly_credits)
    return render_template(
        "legal/terms.html",
        updated=TERMS_UPDATED,
        plans=plans,
        policy=catalog.policy,
        # The FAQ's answer without its "Yes, …" (the page says where to change just after).
        change_terms=catalog.policy.change_answer().removeprefix(FAQ_OPENING),
        grace_days=current_app.config["PAST_DUE_GRACE_DAYS"],
    )


@bp.get("/privacy")
@public_when_anonymous(_page_key)
def privacy() -> str:
    return render_template("legal/privacy.html", updated=PRIVACY_UPDATED)
