"""The API-key panel of the account page: create (shown once), list, edit and revoke keys.

The same operations as /api/v1/api-keys (webapp/api/key_management.py), for people.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, abort, flash, g, redirect, render_template, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from webapp.account.views import render_account
from webapp.api import keys
from webapp.api.forms import CreateApiKeyForm, EditApiKeyForm, KeyActionForm
from webapp.models import ApiKey
from webapp.models.base import utcnow

bp = Blueprint("api_keys", __name__, url_prefix="/account/api-keys")


@dataclass(frozen=True)
class KeyRow:
    """One key of the panel with its own edit form."""

    key: ApiKey
    edit_form: EditApiKeyForm


@dataclass(frozen=True)
class ApiKeysPanel:
    """What `templates/account/_api_keys.html` renders."""

    keys: list[KeyRow]
    create_form: CreateApiKeyForm
    action_form: KeyActionForm


def _edit_form(key: ApiKey | None, public_id: str) -> EditApiKeyForm:
    # The prefix makes every key's fields (and their ids on the page) distinct; it ends in
    # "-" so WTForms adds no separator of its own (it would skip one after an id ending in "_").
    return EditApiKeyForm(obj=key, prefix=f"edit-{public_id}-")


@bp.app_template_global()
def api_keys_panel() -> ApiKeysPanel | None:
    """The signed-in user's keys and forms; a template global so the partial needs no view data."""
    if not current_user.is_authenticated:
        return None
    rows = [
        KeyRow(key, _edit_form(key, key.public_id)) for key in keys.unrevoked_keys(current_user.id)
    ]
    # After a failed create, the submitted form with its errors (see `create`).
    create_form = g.get("failed_create_form") or CreateApiKeyForm()
    return ApiKeysPanel(rows, create_form, KeyActionForm())


def _back_to_account() -> Response:
    return redirect(url_for("account.index", _anchor="api-keys"), code=303)


def _flash_errors(form: CreateApiKeyForm | EditApiKeyForm) -> None:
    for errors in form.errors.values():
        flash(" ".join(errors), "error")


@bp.post("")
@login_required
def create() -> Response | tuple[str, int, dict[str, str]]:
    form = CreateApiKeyForm()
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            abort(400)
        # The account page again, the form with what was typed and its error summary focused:
        # a redirect would lose both.
        g.failed_create_form = form
        return render_account(), 400, {"Cache-Control": "no-store"}
    try:
        new = keys.create_key(
            current_user.id,
            form.name.data or "",  # validated present
            description=form.description.data,
            scope=form.scope.data,
            expires_at=form.expires_at(utcnow()),
        )
    except keys.KeyRequestRefused as exc:
        flash(str(exc), "error")
        return _back_to_account()
    # The full key exists only in this response; it must not be cached anywhere on the way.
    html = render_template("api_keys/created.html", key=new.key, secret=new.secret)
    return html, 200, {"Cache-Control": "no-store"}


@bp.post("/<public_id>/edit")
@login_required
def edit(public_id: str) -> Response:
    if not KeyActionForm().validate_on_submit():
        abort(400)
    form = _edit_form(None, public_id)
    if not form.validate():
        _flash_errors(form)
        return _back_to_account()
    key = keys.update_key(
        current_user.id,
        public_id,
        name=form.name.data or "",  # validated present
        description=form.description.data,
        scope=form.scope.data,
    )
    if key is None:
        abort(404)
    flash(f"The API key {key.name!r} was saved.", "info")
    return _back_to_account()


@bp.post("/<public_id>/revoke")
@login_required
def revoke(public_id: str) -> Response:
    if not KeyActionForm().validate_on_submit():
        abort(400)
    if keys.revoke_key(current_user.id, public_id) is None:
        abort(404)
    flash("The API key was revoked. Requests using it are now refused.", "info")
    return _back_to_account()
