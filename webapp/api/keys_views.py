"""The API-key panel of the account page: create (shown once), list and revoke keys."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from webapp.api import keys
from webapp.api.forms import CreateApiKeyForm, RevokeApiKeyForm
from webapp.models import ApiKey

bp = Blueprint("api_keys", __name__, url_prefix="/account/api-keys")


@dataclass(frozen=True)
class ApiKeysPanel:
    """What `templates/account/_api_keys.html` renders."""

    keys: list[ApiKey]
    create_form: CreateApiKeyForm
    revoke_form: RevokeApiKeyForm


@bp.app_template_global()
def api_keys_panel() -> ApiKeysPanel | None:
    """The signed-in user's keys and forms; a template global so the partial needs no view data."""
    if not current_user.is_authenticated:
        return None
    return ApiKeysPanel(keys.active_keys(current_user.id), CreateApiKeyForm(), RevokeApiKeyForm())


def _back_to_account() -> Response:
    return redirect(url_for("account.index", _anchor="api-keys"), code=303)


@bp.post("")
@login_required
def create() -> Response | tuple[str, int, dict[str, str]]:
    form = CreateApiKeyForm()
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            abort(400)
        for errors in form.errors.values():
            flash(" ".join(errors), "error")
        return _back_to_account()
    try:
        new = keys.create_key(current_user.id, form.name.data)
    except (keys.TooManyKeys, keys.EmailNotVerified) as exc:
        flash(str(exc), "error")
        return _back_to_account()
    # The full key exists only in this response; it must not be cached anywhere on the way.
    html = render_template("api_keys/created.html", key=new.key, secret=new.secret)
    return html, 200, {"Cache-Control": "no-store"}


@bp.post("/<int:key_id>/revoke")
@login_required
def revoke(key_id: int) -> Response:
    if not RevokeApiKeyForm().validate_on_submit():
        abort(400)
    if not keys.revoke_key(current_user.id, key_id):
        abort(404)
    flash("The API key was revoked. Requests using it are now refused.", "info")
    return _back_to_account()
