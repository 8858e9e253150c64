"""The account page: who you are, your plan and your credits."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user, login_required

bp = Blueprint("account", __name__, url_prefix="/account")


@bp.get("")
@login_required
def index() -> str:
    return render_template("account/index.html", user=current_user)
