"""The copy editor: /admin/plans for marketing and admins. Never touches prices or credits."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from webapp import plan_copy
from webapp.admin.forms import EmptyForm, RevertForm, editor_form_class, form_data
from webapp.catalog import get_catalog
from webapp.copy_checks import disagreements
from webapp.extensions import login_manager
from webapp.models.copy import CopyDraft
from webapp.plan_changes import POLICY_QUESTIONS
from webapp.plan_copy import (
    LIMITS,
    MAX_FAQ_ENTRIES,
    MAX_FEATURES,
    InvalidCopy,
    NothingToPublish,
    PublishedCopy,
    StaleDraft,
    UnknownRevision,
)
from webapp.pricing.views import render_pricing

bp = Blueprint("admin", __name__, url_prefix="/admin")

PREVIEW_BANNER = "admin/_preview_banner.html"


@bp.before_request
def require_editor() -> Response | None:
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not current_user.is_editor:
        abort(403)
    return None


@bp.after_request
def never_cache(response: Response) -> Response:
    # Drafts and previews are private and change on every save: no browser or proxy may keep them.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


def _see_other(endpoint: str, **values: Any) -> Response:
    return redirect(url_for(endpoint, **values), code=303)


def _staleness(draft: CopyDraft | None, latest_number: int) -> dict[str, Any] | None:
    """What was published since `draft` started, or None if the draft is up to date."""
    if draft is None or draft.base_revision == latest_number:
        return None
    base = plan_copy.get_revision(draft.base_revision)
    latest = plan_copy.get_revision(latest_number)
    return {
        "base": draft.base_revision,
        "newer": plan_copy.revisions_between(draft.base_revision, latest_number),
        "changes": plan_copy.diff_documents(base.document, latest.document),
    }


def _draft_changes(draft: CopyDraft | None) -> list[dict[str, str]]:
    """What this editor's draft changes, compared with the revision it started from."""
    if draft is None:
        return []
    base = plan_copy.get_revision(draft.base_revision)
    return plan_copy.diff_documents(base.document, draft.document)


def _editor_page(form: Any, draft: CopyDraft | None, status: int = 200) -> tuple[str, int]:
    latest = plan_copy.latest_revision()
    # What visitors would see from this editor's copy that the catalog contradicts: a warning.
    document = draft.document if draft else plan_copy.published_copy().document
    html = render_template(
        "admin/plans.html",
        form=form,
        draft=draft,
        latest=latest,
        stale=_staleness(draft, latest.number),
        draft_changes=_draft_changes(draft),
        catalog=get_catalog(),
        limits=LIMITS,
        max_features=MAX_FEATURES,
        max_faq=MAX_FAQ_ENTRIES,
        policy_questions=POLICY_QUESTIONS,
        button_form=EmptyForm(),
        copy_warnings=disagreements(document, get_catalog()),
    )
    return html, status


@bp.route("/plans", methods=["GET", "POST"])
def plans() -> Response | tuple[str, int]:
    """The editor: every field of the copy, saved as this editor's draft."""
    draft = plan_copy.get_draft(current_user.id)
    form_class = editor_form_class(tuple(get_catalog().plans), tuple(get_catalog().packs))
    form = form_class()
    if not form.is_submitted():
        document = draft.document if draft else plan_copy.published_copy().document
        form = form_class(data=form_data(document))
    elif form.validate():
        try:
            draft = plan_copy.save_draft(current_user.id, form.to_document())
        except InvalidCopy as exc:
            form.form_errors.extend(exc.problems)
        else:
            if form.publish.data:
                return _publish_draft(draft)
            if form.preview.data:
                return _see_other("admin.preview")
            flash("Draft saved. Visitors do not see it until you publish.", "success")
            return _see_other("admin.plans")
    failed = bool(form.errors or form.form_errors)
    return _editor_page(form, draft, 400 if failed else 200)


def _publish_draft(draft: CopyDraft) -> Response:
    try:
        revision = plan_copy.publish(
            draft.document,
            author_label=current_user.email,
            author_id=current_user.id,
            base_revision=draft.base_revision,
        )
    except StaleDraft as exc:
        flash(
            f"Not published: {exc.latest.author_label} published revision {exc.latest.number} "
            f"after your draft started from revision {exc.base_revision}. Review what changed, "
            "bring your draft up to date, then publish again.",
            "warning",
        )
        return _see_other("admin.plans")
    except NothingToPublish:
        flash("Nothing to publish: your draft is the same as the published copy.", "info")
        return _see_other("admin.plans")
    except InvalidCopy as exc:
        flash("Not published: " + "; ".join(exc.problems), "error")
        return _see_other("admin.plans")
    flash(f"Published revision {revision.number}. Every visitor sees it now.", "success")
    return _see_other("admin.history")


@bp.get("/plans/preview")
def preview() -> Response | str:
    """The real pricing page rendered with this editor's draft."""
    draft = plan_copy.get_draft(current_user.id)
    if draft is None:
        flash("You have no draft to preview: change something, then “Save and preview”.", "info")
        return _see_other("admin.plans")
    return render_pricing(
        PublishedCopy(draft.base_revision, draft.document),
        banner_template=PREVIEW_BANNER,
        preview_draft=draft,
        preview_latest=plan_copy.current_version(),
        preview_publish_form=EmptyForm(),
    )


@bp.post("/plans/publish")
def publish() -> Response:
    if not EmptyForm().validate_on_submit():
        abort(400)
    draft = plan_copy.get_draft(current_user.id)
    if draft is None:
        flash("You have no draft to publish.", "info")
        return _see_other("admin.plans")
    return _publish_draft(draft)


@bp.post("/plans/discard")
def discard() -> Response:
    if not EmptyForm().validate_on_submit():
        abort(400)
    plan_copy.discard_draft(current_user.id)
    flash("Draft discarded. The form shows the published copy again.", "info")
    return _see_other("admin.plans")


@bp.post("/plans/rebase")
def rebase() -> Response:
    """Move a stale draft onto the newest revision, keeping this editor's changes."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        conflicts = plan_copy.rebase_draft(current_user.id)
    except InvalidCopy as exc:
        flash("Could not update the draft: " + "; ".join(exc.problems), "error")
        return _see_other("admin.plans")
    message = f"Your draft now starts from revision {plan_copy.current_version()}."
    if conflicts:
        message += " Both you and the newer revision changed: " + ", ".join(conflicts)
        message += ". Your version is kept; check them before publishing."
    flash(message, "warning" if conflicts else "success")
    return _see_other("admin.plans")


@bp.get("/plans/history")
def history() -> str:
    """Every published revision with its author, time and changes."""
    revisions = plan_copy.list_revisions()
    return render_template(
        "admin/history.html",
        revisions=revisions,
        latest_number=revisions[0].number,
        revert_form=RevertForm(expected_latest=revisions[0].number),
    )


@bp.get("/plans/history/<int:number>")
def show_revision(number: int) -> str:
    """The pricing page as revision `number` had it, to decide whether to revert to it."""
    try:
        revision = plan_copy.get_revision(number)
    except UnknownRevision:
        abort(404)
    return render_pricing(
        PublishedCopy(revision.number, revision.document),
        banner_template="admin/_revision_banner.html",
        shown_revision=revision,
        latest_number=plan_copy.current_version(),
        revert_form=RevertForm(expected_latest=plan_copy.current_version()),
    )


@bp.post("/plans/history/<int:number>/revert")
def revert(number: int) -> Response:
    """Publish revision `number`'s copy again as a new revision."""
    form = RevertForm()
    expected = form.expected_latest.data or ""
    if not form.validate_on_submit() or not expected.isdigit():
        abort(400)
    try:
        revision = plan_copy.revert_to(
            number,
            author_label=current_user.email,
            author_id=current_user.id,
            expected_latest=int(expected),
        )
    except UnknownRevision:
        abort(404)
    except StaleDraft as exc:
        flash(
            f"Not reverted: {exc.latest.author_label} published revision {exc.latest.number} "
            "since you opened this page. Check the history, then revert again.",
            "warning",
        )
        return _see_other("admin.history")
    except NothingToPublish:
        flash(f"Revision {number}'s copy is already the published copy.", "info")
        return _see_other("admin.history")
    flash(f"Reverted to revision {number}: published as revision {revision.number}.", "success")
    return _see_other("admin.history")
