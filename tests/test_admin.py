"""The copy editor: access, drafts, preview, publish, concurrency, history and revert."""

from __future__ import annotations

import copy
import json
import logging
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import AuthActions, create_user, csrf_token, sql
from webapp.catalog import get_catalog
from webapp.page_cache import CSRF_PLACEHOLDER
from webapp.plan_copy import PACK_FIELDS, PLAN_FIELDS

EDITOR = "/admin/plans"
PASSWORD = "correct horse battery"


def default_document(app: Flask) -> dict[str, Any]:
    with app.app_context():
        return copy.deepcopy(get_catalog().default_copy())


def form_fields(document: dict[str, Any]) -> dict[str, str]:
    """The editor's POST body for `document`, field names as the form renders them."""
    data = {
        "headline": document["page"]["headline"],
        "subheadline": document["page"]["subheadline"],
    }
    for index, entry in enumerate(document["page"]["faq"]):
        data[f"faq-{index}-question"] = entry["question"]
        data[f"faq-{index}-answer"] = entry["answer"]
    for plan_id, plan in document["plans"].items():
        for key, value in plan.items():
            if key == "features":
                data[f"{plan_id}-features"] = "\n".join(value)
            elif key == "highlighted":
                if value:
                    data[f"{plan_id}-highlighted"] = "y"
            else:
                data[f"{plan_id}-{key}"] = str(value)
    for pack_id, pack in document.get("packs", {}).items():
        data |= {f"{pack_id}-{key}": value for key, value in pack.items()}
    return data


def post_editor(client: FlaskClient, document: dict[str, Any], button: str = "save", **extra):
    data = {**form_fields(document), button: "1", **extra}
    data["csrf_token"] = csrf_token(client, EDITOR)
    return client.post(EDITOR, data=data)


def post_button(client: FlaskClient, path: str, page: str = EDITOR, **extra: str):
    return client.post(path, data={"csrf_token": csrf_token(client, page), **extra})


def login_editor(app: Flask, client: FlaskClient, email: str = "mia@example.com", role="marketing"):
    create_user(app, email=email, role=role)
    response = AuthActions(app, client).login(email=email, password=PASSWORD)
    assert response.status_code == 303


@pytest.fixture
def editor(app: Flask, client: FlaskClient) -> FlaskClient:
    login_editor(app, client)
    return client


def public_html(app: Flask) -> str:
    """The pricing page as an anonymous visitor sees it, from a fresh client."""
    return app.test_client().get("/pricing").get_data(as_text=True)


def edited(app: Flask, **plan_changes: Any) -> dict[str, Any]:
    document = default_document(app)
    document["plans"]["professional"].update(plan_changes)
    return document


# --- Access ---------------------------------------------------------------------------------

ADMIN_GETS = [EDITOR, f"{EDITOR}/preview", f"{EDITOR}/history", f"{EDITOR}/history/1"]
ADMIN_POSTS = [
    EDITOR,
    f"{EDITOR}/publish",
    f"{EDITOR}/discard",
    f"{EDITOR}/rebase",
    f"{EDITOR}/history/1/revert",
]


@pytest.mark.parametrize("path", ADMIN_GETS)
def test_anonymous_visitors_are_sent_to_log_in(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize("path", ADMIN_GETS + ADMIN_POSTS)
def test_normal_users_get_403(app, client, path):
    login_editor(app, client, email="user@example.com", role="user")
    token = csrf_token(client, "/account")
    if path in ADMIN_POSTS:
        response = client.post(path, data={"csrf_token": token, "headline": "Hacked"})
    else:
        response = client.get(path)
    assert response.status_code == 403
    assert "Hacked" not in public_html(app)


@pytest.mark.parametrize("role", ["marketing", "admin"])
def test_editors_see_the_form_with_read_only_prices(app, client, role):
    login_editor(app, client, role=role)
    response = client.get(EDITOR)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    assert 'name="professional-tagline"' in html
    for fact in ("$12.99", "$129.90", "3,000", "professional_monthly", "professional_yearly"):
        assert fact in html
    assert "engineering changes them in the catalog" in html
    assert 'maxlength="120"' in html  # limits are in the form
    assert "Up to 120 characters" in html


def test_edit_copy_link_only_for_editors(app, client):
    create_user(app, email="user@example.com", role="user")
    auth = AuthActions(app, client)
    auth.login(email="user@example.com")
    assert "Edit copy" not in client.get("/account").get_data(as_text=True)
    auth.logout()
    login_editor(app, client)
    assert 'href="/admin/plans">Edit copy' in client.get("/account").get_data(as_text=True)


def test_posts_need_a_csrf_token(app, editor):
    data = {**form_fields(edited(app, tagline="No token")), "publish": "1"}
    assert editor.post(EDITOR, data=data).status_code == 400
    assert "No token" not in public_html(app)


# --- Draft, preview, publish ----------------------------------------------------------------


def test_draft_preview_then_publish(app, editor):
    document = edited(app, tagline="Ship faster than ever.")
    document["plans"]["professional"]["features"][1] = "Round-the-clock support"
    response = post_editor(editor, document, button="preview")
    assert response.status_code == 303
    assert response.headers["Location"] == f"{EDITOR}/preview"

    preview = editor.get(f"{EDITOR}/preview")
    assert preview.headers["Cache-Control"] == "no-store"
    html = preview.get_data(as_text=True)
    assert "banner-preview" in html and "Preview" in html
    assert "Ship faster than ever." in html and "Round-the-clock support" in html
    assert "$12.99" in html  # the real pricing page, prices from the catalog
    assert "Ship faster than ever." not in public_html(app)

    response = post_button(editor, f"{EDITOR}/publish", page=f"{EDITOR}/preview")
    assert response.status_code == 303
    public = public_html(app)
    assert "Ship faster than ever." in public and "Round-the-clock support" in public
    assert (
        "Priority support" not in public.split('id="plan-professional"')[1].split("</article>")[0]
    )
    history = editor.get(f"{EDITOR}/history").get_data(as_text=True)
    assert "mia@example.com" in history
    assert "Ship faster than ever." in history  # the readable diff
    assert sql(app, "select count(*) from copy_drafts")[0][0] == 0


def test_save_and_publish_in_one_step(app, editor):
    response = post_editor(editor, edited(app, name="Pro"), button="publish")
    assert response.status_code == 303
    assert response.headers["Location"] == f"{EDITOR}/history"
    assert ">Pro</h3>" in public_html(app)
    assert sql(app, "select max(number) from copy_revisions")[0][0] == 2


def test_publish_logs_the_editor_id_never_their_email(app, editor, caplog):
    with caplog.at_level(logging.DEBUG, logger="webapp"):
        post_editor(editor, edited(app, name="Pro"), button="publish")
    [(editor_id,)] = sql(app, "select id from users where email = 'mia@example.com'")
    assert f"copy revision 2 published by user {editor_id}" in caplog.text
    assert "mia@example.com" not in caplog.text


def test_saved_draft_is_kept_and_not_public(app, editor):
    post_editor(editor, edited(app, tagline="Draft only"))
    page = editor.get(EDITOR).get_data(as_text=True)
    assert "Draft only" in page
    assert "Your changes to revision 1 (1)" in page
    assert "Professional · Tagline</strong>:" in page
    assert "Draft only" not in public_html(app)
    post_button(editor, f"{EDITOR}/discard")
    assert "Draft only" not in editor.get(EDITOR).get_data(as_text=True)


def test_preview_without_a_draft_goes_back_to_the_editor(editor):
    response = editor.get(f"{EDITOR}/preview")
    assert response.status_code == 303
    assert response.headers["Location"] == EDITOR


def test_features_added_removed_and_reordered_with_plain_lines(app, editor):
    document = default_document(app)
    document["plans"]["business"]["features"] = ["Usage exports", "Team seats", "New one"]
    post_editor(editor, document, button="publish")
    html = public_html(app)
    card = html.split('id="plan-business"')[1].split("</article>")[0]
    assert card.index("Usage exports") < card.index("Team seats") < card.index("New one")
    assert "Team workspaces" not in card


def test_faq_entries_added_and_removed(app, editor):
    document = default_document(app)
    document["page"]["faq"][0] = {"question": "", "answer": ""}  # cleared: removed
    document["page"]["faq"].append({"question": "Is there a free trial?", "answer": "Not yet."})
    post_editor(editor, document, button="publish")
    html = public_html(app)
    assert "Is there a free trial?" in html
    assert "What is a credit?" not in html


def test_page_headline_and_badge_and_order(app, editor):
    document = default_document(app)
    document["page"]["headline"] = "Plans that grow with you"
    document["plans"]["agency"].update(badge="Best value", display_order=0 + 1, highlighted=True)
    document["plans"]["starter"]["display_order"] = 4
    post_editor(editor, document, button="publish")
    html = public_html(app)
    assert "Plans that grow with you" in html and "Best value" in html
    assert html.index('id="plan-agency"') < html.index('id="plan-starter"')


# --- Prices are not copy --------------------------------------------------------------------

CRAFTED_MONEY_FIELDS = {
    "professional-monthly_cents": "1",
    "professional-yearly_cents": "1",
    "professional-monthly_credits": "999999",
    "professional-id": "free",
    "professional-lookup_key": "starter_monthly",
    "professional-price": "0.01",
    "pkg_pro-credits": "999999",
    "pkg_pro-price_cents": "1",
    "pkg_pro-lookup_key": "pack_pkg_starter",
    "monthly_cents": "1",
    "plans-professional-monthly_cents": "1",
    "currency": "eur",
}


@pytest.mark.parametrize("button", ["save", "preview", "publish"])
def test_crafted_price_and_credit_fields_change_nothing(app, editor, button):
    response = post_editor(
        editor, edited(app, tagline="Crafted"), button=button, **CRAFTED_MONEY_FIELDS
    )
    assert response.status_code == 303
    pages = [public_html(app)]
    if button != "publish":  # publishing consumes the draft, so there is nothing to preview
        pages.append(editor.get(f"{EDITOR}/preview").get_data(as_text=True))
    for html in pages:
        assert "$12.99" in html and "3,000" in html and "$0.01" not in html
        assert "999,999" not in html and "€" not in html
        assert "$19.99" in html and "500 credits" in html  # pkg_pro, as the catalog says
    with app.app_context():
        assert get_catalog().price("professional", "monthly").amount_cents == 1299
        assert get_catalog().pack("pkg_pro").amount_cents == 1999
    stored = sql(app, "select document from copy_revisions") + sql(
        app, "select document from copy_drafts"
    )
    for (document,) in stored:
        document = json.loads(document) if isinstance(document, str) else document
        assert set(document) == {"page", "plans", "packs"}
        assert set(document["plans"]) == {"starter", "professional", "business", "agency"}
        for plan in document["plans"].values():
            assert set(plan) == set(PLAN_FIELDS)
        assert set(document["packs"]) == {"pkg_starter", "pkg_pro", "pkg_business"}
        for pack in document["packs"].values():
            assert set(pack) == set(PACK_FIELDS)


@pytest.mark.parametrize("path", ADMIN_POSTS)
def test_no_admin_post_changes_prices_or_credits(app, editor, path):
    post_editor(editor, edited(app, tagline="Drafted"))  # so publish/rebase have a draft
    post_button(editor, path, expected_latest="1", **CRAFTED_MONEY_FIELDS)
    html = public_html(app)
    for fact in ("$4.99", "$12.99", "$39.99", "$99.99", "3,000", "30,000"):
        assert fact in html
    assert "$0.01" not in html and "999,999" not in html


# --- Markup injection -----------------------------------------------------------------------

SCRIPT = "<script>alert('xss')</script>"
TEXT_FIELDS = [
    ("page", "headline"),
    ("page", "subheadline"),
    ("faq", "question"),
    ("faq", "answer"),
    *[("plan", key) for key in ("name", "tagline", "description", "features", "badge")],
    ("plan", "cta_label"),
    *[("pack", key) for key in ("name", "description", "badge")],
]


def _inject(document: dict[str, Any], where: str, key: str, payload: str) -> None:
    if where == "page":
        document["page"][key] = payload
    elif where == "faq":
        document["page"]["faq"][0][key] = payload
    elif where == "pack":
        document["packs"]["pkg_pro"][key] = payload
    elif key == "features":
        document["plans"]["professional"]["features"].append(payload)
    else:
        document["plans"]["professional"][key] = payload


def _assert_inert(html: str) -> None:
    """No script or event-handler markup survived as a tag (escaped text is fine)."""
    assert "<script>alert" not in html
    assert not re.search(r"<img[^>]*onerror", html)


@pytest.mark.parametrize("payload", [SCRIPT, '<img src=x onerror="alert(1)">x'])
@pytest.mark.parametrize(("where", "key"), TEXT_FIELDS)
def test_script_in_any_field_never_runs(app, editor, where, key, payload):
    document = default_document(app)
    _inject(document, where, key, payload)
    assert post_editor(editor, document, button="preview").status_code == 303
    _assert_inert(editor.get(EDITOR).get_data(as_text=True))
    preview = editor.get(f"{EDITOR}/preview").get_data(as_text=True)
    _assert_inert(preview)
    assert "&lt;script&gt;" in preview or "&lt;img" in preview  # shown as text
    post_button(editor, f"{EDITOR}/publish", page=f"{EDITOR}/preview")
    _assert_inert(public_html(app))
    _assert_inert(editor.get(f"{EDITOR}/history").get_data(as_text=True))
    assert sql(app, "select max(number) from copy_revisions")[0][0] == 2


@pytest.mark.parametrize(("where", "key"), TEXT_FIELDS)
def test_the_csrf_placeholder_is_refused_in_any_field(app, editor, where, key):
    # Pages are cached with a placeholder where each visitor's CSRF token goes: copy repeating
    # it could try to carry members' tokens off in a link (issue 13, item 8).
    document = default_document(app)
    _inject(document, where, key, f"Save today https://evil.example/?t={CSRF_PLACEHOLDER}")
    response = post_editor(editor, document, button="publish")
    assert response.status_code == 400
    assert "cannot contain" in response.get_data(as_text=True).lower()
    assert CSRF_PLACEHOLDER in response.get_data(as_text=True)
    assert sql(app, "select count(*) from copy_drafts")[0][0] == 0
    assert sql(app, "select max(number) from copy_revisions")[0][0] == 1


def test_script_in_number_field_is_refused_and_escaped(app, editor):
    response = post_editor(editor, edited(app, display_order=SCRIPT), button="publish")
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    _assert_inert(html)
    assert "Enter a whole number" in html or "Not a valid integer" in html
    assert sql(app, "select max(number) from copy_revisions")[0][0] == 1


@pytest.mark.parametrize(
    "link",
    ["javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html,x", "vbscript:x", "/relative"],
)
def test_links_other_than_http_and_mailto_are_refused(app, editor, link):
    response = post_editor(editor, edited(app, description=f"[click]({link})"), button="publish")
    assert response.status_code == 400
    assert "must start with http://, https:// or mailto:" in response.get_data(as_text=True)
    assert sql(app, "select max(number) from copy_revisions")[0][0] == 1


def test_http_and_mailto_links_are_published(app, editor):
    description = "See [docs](https://example.com/docs) or [mail us](mailto:sales@example.com)."
    post_editor(editor, edited(app, description=description), button="publish")
    html = public_html(app)
    assert 'href="https://example.com/docs"' in html
    assert 'href="mailto:sales@example.com"' in html


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": ""}, "Required."),
        ({"tagline": "x" * 121}, "At most 120 characters."),
        ({"cta_label": "   "}, "Required."),
        ({"features": []}, "List at least one feature."),
        ({"features": ["x" * 81]}, "at most 80 characters"),
        ({"features": [f"f{i}" for i in range(13)]}, "At most 12 features."),
        ({"display_order": 0}, "From 1 to 99."),
    ],
)
def test_validation_errors_are_shown_and_nothing_is_saved(app, editor, changes, message):
    response = post_editor(editor, edited(app, **changes), button="publish")
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert sql(app, "select count(*) from copy_drafts")[0][0] == 0
    assert sql(app, "select max(number) from copy_revisions")[0][0] == 1


def test_half_filled_faq_entry_is_refused(app, editor):
    document = default_document(app)
    document["page"]["faq"].append({"question": "Only a question?", "answer": ""})
    response = post_editor(editor, document, button="save")
    assert response.status_code == 400
    assert "Give both a question and an answer" in response.get_data(as_text=True)


# --- Two editors ----------------------------------------------------------------------------


def test_second_publisher_is_warned_and_nothing_is_overwritten(app, editor):
    other = app.test_client()
    login_editor(app, other, email="max@example.com")
    # Both start editing revision 1.
    post_editor(editor, edited(app, tagline="Mia's tagline"))
    max_document = default_document(app)
    max_document["plans"]["starter"]["tagline"] = "Max's tagline"
    post_editor(other, max_document)

    post_button(editor, f"{EDITOR}/publish")  # Mia publishes revision 2 first.
    preview = other.get(f"{EDITOR}/preview").get_data(as_text=True)
    assert "Revision 2 has been published since" in preview
    response = post_button(other, f"{EDITOR}/publish")
    assert response.status_code == 303
    page = other.get(EDITOR).get_data(as_text=True)
    assert "Not published: mia@example.com published revision 2" in page
    assert "The copy changed since your draft started" in page
    assert "Mia&#39;s tagline" in page  # what changed is shown
    public = public_html(app)
    assert "Mia&#39;s tagline" in public and "Max&#39;s tagline" not in public
    assert sql(app, "select max(number) from copy_revisions")[0][0] == 2

    # Max brings his draft up to date: his change on top of Mia's, then publishes.
    post_button(other, f"{EDITOR}/rebase")
    post_button(other, f"{EDITOR}/publish")
    public = public_html(app)
    assert "Mia&#39;s tagline" in public and "Max&#39;s tagline" in public
    assert sql(app, "select max(number) from copy_revisions")[0][0] == 3


def test_rebase_names_fields_both_editors_changed(app, editor):
    other = app.test_client()
    login_editor(app, other, email="max@example.com")
    post_editor(editor, edited(app, tagline="Mia"))
    post_editor(other, edited(app, tagline="Max"))
    post_button(editor, f"{EDITOR}/publish")
    post_button(other, f"{EDITOR}/rebase")
    page = other.get(EDITOR).get_data(as_text=True)
    assert "Both you and the newer revision changed: Professional · Tagline" in page


# --- History and revert ---------------------------------------------------------------------


def test_revert_publishes_the_old_copy_as_a_new_revision(app, editor):
    post_editor(editor, edited(app, tagline="Short-lived"), button="publish")
    assert "Short-lived" in public_html(app)
    history = editor.get(f"{EDITOR}/history").get_data(as_text=True)
    assert "Revert to 1" in history
    response = post_button(
        editor, f"{EDITOR}/history/1/revert", page=f"{EDITOR}/history", expected_latest="2"
    )
    assert response.status_code == 303
    public = public_html(app)
    assert "Short-lived" not in public and "For individuals shipping real work." in public
    assert sql(app, "select number, reverted_from from copy_revisions order by number")[-1] == (
        3,
        1,
    )
    history = editor.get(f"{EDITOR}/history").get_data(as_text=True)
    assert "Reverted to revision 1" in history


def test_revert_on_top_of_a_newer_revision_is_refused(app, editor):
    post_editor(editor, edited(app, tagline="Two"), button="publish")
    post_editor(editor, edited(app, tagline="Three"), button="publish")
    response = post_button(
        editor, f"{EDITOR}/history/1/revert", page=f"{EDITOR}/history", expected_latest="2"
    )
    assert response.status_code == 303
    assert "Not reverted" in editor.get(f"{EDITOR}/history").get_data(as_text=True)
    assert "Three" in public_html(app)


def test_revision_view_shows_old_copy_with_banner(app, editor):
    post_editor(editor, edited(app, tagline="Newer"), button="publish")
    response = editor.get(f"{EDITOR}/history/1")
    html = response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    assert "Preview — revision 1" in html and "For individuals shipping real work." in html
    assert editor.get(f"{EDITOR}/history/99").status_code == 404


def test_no_inline_scripts_or_style_attributes(app, editor):
    post_editor(editor, edited(app, tagline="x"), button="save")
    for path in (EDITOR, f"{EDITOR}/preview", f"{EDITOR}/history", f"{EDITOR}/history/1"):
        html = editor.get(path).get_data(as_text=True)
        assert "<script" not in html and "style=" not in html
