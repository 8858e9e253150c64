"""Credit packs' copy: names, short descriptions and badges marketing publishes (issue 16).

The document's "packs" section: catalog defaults, validation, documents published before it
existed, the editor's fieldsets, and every place a pack is shown (pricing, account, the API).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.api.conftest import bearer, issue_api_key
from tests.conftest import AuthActions, create_user, sql
from tests.test_admin import EDITOR, default_document, login_editor, post_editor
from webapp import plan_copy
from webapp.catalog import get_catalog
from webapp.extensions import db
from webapp.models.base import utcnow
from webapp.models.copy import CopyRevision
from webapp.page_cache import CSRF_PLACEHOLDER
from webapp.stripe_gateway import get_gateway

PACK_IDS = ["pkg_starter", "pkg_pro", "pkg_business"]


def without_packs(document: dict[str, Any]) -> dict[str, Any]:
    """`document` as copy published before packs had copy looked."""
    return {key: value for key, value in document.items() if key != "packs"}


def store_old_revision(app: Flask, document: dict[str, Any], number: int = 1) -> None:
    """A revision as an older version of the site stored it (no validation, no defaults)."""
    with app.app_context():
        db.session.add(
            CopyRevision(
                number=number,
                document=document,
                author_label="before packs had copy",
                summary="old",
                changes=[],
                created_at=utcnow(),
            )
        )
        db.session.commit()


def renamed(app: Flask, pack_id: str = "pkg_pro", **changes: str) -> dict[str, Any]:
    document = default_document(app)
    document["packs"][pack_id].update(changes)
    return document


# --- The document ---------------------------------------------------------------------------


def test_default_copy_has_each_catalog_packs_name_description_and_badge(app):
    with app.app_context():
        document = get_catalog().default_copy()
        assert list(document["packs"]) == PACK_IDS
        assert document["packs"]["pkg_pro"] == {
            "name": "Pro Pack",
            "description": "Five times the Starter Pack, for bigger projects.",
            "badge": "",
        }
        assert document["packs"]["pkg_business"]["badge"] == "Best value"
        assert plan_copy.published_copy().document["packs"] == document["packs"]


def test_a_document_without_packs_validates_with_the_catalog_defaults(app):
    document = default_document(app)
    with app.app_context():
        clean = plan_copy.validate_document(without_packs(document))
    assert clean == document


def test_a_pack_added_to_the_catalog_later_gets_its_default_copy(app):
    document = default_document(app)
    del document["packs"]["pkg_business"]
    document["packs"]["pkg_pro"]["name"] = "Creator Pack"
    with app.app_context():
        clean = plan_copy.validate_document(document)
    assert clean["packs"]["pkg_business"]["name"] == "Business Pack"
    assert clean["packs"]["pkg_pro"]["name"] == "Creator Pack"


def test_pack_text_is_cleaned_to_one_line(app):
    document = renamed(app, name="  Creator\n Pack ", description="Big\r\nand\tcheap")
    with app.app_context():
        clean = plan_copy.validate_document(document)["packs"]["pkg_pro"]
    assert clean == {"name": "Creator Pack", "description": "Big and cheap", "badge": ""}


def _problems(app: Flask, document: Any) -> list[str]:
    with app.app_context(), pytest.raises(plan_copy.InvalidCopy) as invalid:
        plan_copy.validate_document(document)
    return invalid.value.problems


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": ""}, "packs.pkg_pro.name: is required"),
        ({"name": "   "}, "packs.pkg_pro.name: is required"),
        ({"name": "x" * 41}, "packs.pkg_pro.name: at most 40 characters (has 41)"),
        ({"description": "x" * 161}, "packs.pkg_pro.description: at most 160 characters"),
        ({"badge": "x" * 33}, "packs.pkg_pro.badge: at most 32 characters (has 33)"),
        ({"badge": 7}, "packs.pkg_pro.badge: must be text"),
        ({"name": f"Get {CSRF_PLACEHOLDER}"}, "packs.pkg_pro.name: cannot contain"),
        ({"credits": 999999}, "packs.pkg_pro: unknown field 'credits'"),
        ({"price_cents": 1}, "packs.pkg_pro: unknown field 'price_cents'"),
    ],
)
def test_pack_rules(app, changes, message):
    problems = _problems(app, renamed(app, **changes))
    assert any(problem.startswith(message) for problem in problems), problems


def test_unknown_and_malformed_packs_are_refused(app):
    document = default_document(app)
    document["packs"]["pkg_free"] = {"name": "Free", "description": "", "badge": ""}
    assert "packs: unknown pack 'pkg_free'" in _problems(app, document)[0]
    document = default_document(app)
    del document["packs"]["pkg_pro"]["badge"]
    assert _problems(app, document) == ["packs.pkg_pro: missing field 'badge'"]
    document["packs"] = ["not", "an", "object"]
    assert _problems(app, document) == ["packs: must be an object keyed by pack id"]
    document["packs"] = {"pkg_pro": "Creator Pack"}
    assert _problems(app, document) == ["packs.pkg_pro: must be an object"]


def test_markup_in_pack_copy_is_kept_as_text_and_escaped_on_the_page(app, client):
    payload = "<b onmouseover=alert(1)>Pro</b>"
    with app.app_context():
        plan_copy.publish(renamed(app, name=payload), author_label="t", base_revision=1)
    html = client.get("/pricing").get_data(as_text=True)
    assert payload not in html
    assert "&lt;b onmouseover=alert(1)&gt;Pro&lt;/b&gt;" in html


def test_diff_names_pack_changes(app):
    before = default_document(app)
    after = renamed(app, name="Creator Pack", badge="New")
    with app.app_context():
        changes = plan_copy.diff_documents(before, after)
    assert [(c["where"], c["field"], c["before"], c["after"]) for c in changes] == [
        ("Creator Pack (credit pack)", "Display name", "Pro Pack", "Creator Pack"),
        ("Creator Pack (credit pack)", "Badge", "(empty)", "New"),
    ]
    assert plan_copy.summarise(changes) == (
        "Changed Creator Pack (credit pack) display name, Creator Pack (credit pack) badge"
    )


def test_an_old_document_diffs_against_its_defaults_not_empty(app):
    document = default_document(app)
    with app.app_context():
        assert plan_copy.diff_documents(without_packs(document), document) == []
        changes = plan_copy.diff_documents(without_packs(document), renamed(app, badge="Hot"))
    assert [(c["field"], c["before"], c["after"]) for c in changes] == [("Badge", "(empty)", "Hot")]


def test_merge_keeps_both_sides_pack_changes_and_names_conflicts(app):
    base = default_document(app)
    mine, theirs = copy.deepcopy(base), copy.deepcopy(base)
    mine["packs"]["pkg_pro"]["name"] = "Mine"
    mine["packs"]["pkg_starter"]["badge"] = "Mine"
    theirs["packs"]["pkg_pro"]["name"] = "Theirs"
    theirs["packs"]["pkg_business"]["description"] = "Theirs"
    with app.app_context():
        merged, conflicts = plan_copy.merge_documents(without_packs(base), mine, theirs)
    assert merged["packs"]["pkg_pro"]["name"] == "Mine"
    assert merged["packs"]["pkg_starter"]["badge"] == "Mine"
    assert merged["packs"]["pkg_business"]["description"] == "Theirs"
    assert conflicts == ["Theirs · Display name"]


# --- Old published documents ----------------------------------------------------------------


def test_an_old_revision_without_packs_loads_and_shows_default_names(app, client):
    store_old_revision(app, without_packs(default_document(app)))
    with app.app_context():
        published = plan_copy.published_copy()
        assert published.version == 1
        assert published.pack("pkg_pro")["name"] == "Pro Pack"
        assert [offer.name for offer in plan_copy.pack_offers(published)] == [
            "Starter Pack",
            "Pro Pack",
            "Business Pack",
        ]
    html = client.get("/pricing").get_data(as_text=True)
    assert "Pro Pack" in html and "Best value" in html


def test_republishing_an_old_revision_unchanged_is_nothing_to_publish(app):
    store_old_revision(app, without_packs(default_document(app)))
    with app.app_context(), pytest.raises(plan_copy.NothingToPublish):
        plan_copy.publish(default_document(app), author_label="t", base_revision=1)


def test_reverting_to_a_revision_without_packs_restores_the_default_pack_copy(app):
    store_old_revision(app, without_packs(default_document(app)))
    with app.app_context():
        plan_copy.publish(renamed(app, name="Creator Pack"), author_label="t", base_revision=1)
        revision = plan_copy.revert_to(1, author_label="t", author_id=None, expected_latest=2)
        assert revision.document["packs"]["pkg_pro"]["name"] == "Pro Pack"
        assert [(c["before"], c["after"]) for c in revision.changes] == [
            ("Creator Pack", "Pro Pack")
        ]


# --- The editor -----------------------------------------------------------------------------


@pytest.fixture
def editor(app: Flask, client: FlaskClient) -> FlaskClient:
    login_editor(app, client)
    return client


def test_the_editor_has_a_fieldset_per_pack_with_read_only_facts(app, editor):
    html = editor.get(EDITOR).get_data(as_text=True)
    for pack_id in PACK_IDS:
        assert f'id="edit-{pack_id}"' in html
        assert f'name="{pack_id}-name"' in html
        assert f'name="{pack_id}-description"' in html
        assert f'name="{pack_id}-badge"' in html
    assert 'value="Pro Pack"' in html and "pack_pkg_pro" in html and "$19.99, once" in html
    # Nothing to type a price or credits into.
    assert 'name="pkg_pro-credits"' not in html and 'name="pkg_pro-price_cents"' not in html


def test_an_old_draft_without_packs_opens_with_the_default_pack_copy(app, editor):
    assert post_editor(editor, default_document(app)).status_code == 303
    [(editor_id,)] = sql(app, "select editor_id from copy_drafts")
    with app.app_context():
        draft = plan_copy.get_draft(editor_id)
        draft.document = without_packs(draft.document)  # as an older site saved it
        db.session.commit()
    html = editor.get(EDITOR).get_data(as_text=True)
    assert 'name="pkg_pro-name"' in html and 'value="Pro Pack"' in html


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": ""}, "Required."),
        ({"name": "x" * 41}, "At most 40 characters."),
        ({"description": "x" * 161}, "At most 160 characters."),
        ({"badge": "x" * 33}, "At most 32 characters."),
    ],
)
def test_invalid_pack_copy_is_shown_and_nothing_is_saved(app, editor, changes, message):
    response = post_editor(editor, renamed(app, **changes), button="publish")
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert message in html and 'id="edit-pkg_pro"' in html
    assert sql(app, "select count(*) from copy_drafts")[0][0] == 0
    assert sql(app, "select max(number) from copy_revisions")[0][0] == 1


def test_the_preview_shows_the_drafts_pack_copy_only_to_the_editor(app, editor):
    document = renamed(app, name="Creator Pack", description="For makers.", badge="New")
    assert post_editor(editor, document, button="preview").status_code == 303
    preview = editor.get(f"{EDITOR}/preview").get_data(as_text=True)
    assert "Creator Pack" in preview and "For makers." in preview
    assert "Creator Pack" not in app.test_client().get("/pricing").get_data(as_text=True)


def test_renaming_a_pack_shows_everywhere_packs_are_shown(app, editor):
    """The issue's check: rename in the editor, see it on /pricing, /account and in the API."""
    member_id = create_user(app, email="ada@example.com")
    member = app.test_client()
    assert AuthActions(app, member).login().status_code == 303
    api_key = issue_api_key(app, member_id)
    anonymous = app.test_client()
    # Warm every cache first, so the test proves a publish reaches past them.
    assert "Pro Pack" in anonymous.get("/pricing").get_data(as_text=True)
    assert "Pro Pack" in member.get("/account").get_data(as_text=True)
    assert "Pro Pack" in member.get("/pricing").get_data(as_text=True)

    document = renamed(app, name="Creator Pack", description="For makers.", badge="New")
    response = post_editor(editor, document, button="publish")
    assert response.status_code == 303

    for client, path in [(anonymous, "/pricing"), (member, "/pricing"), (member, "/account")]:
        html = client.get(path).get_data(as_text=True)
        assert "Creator Pack" in html and "For makers." in html, path
        assert 'aria-label="Buy Creator Pack' in html, path
        assert "Pro Pack" not in html, path
        assert "500 credits" in html and "$19.99" in html, path  # money stays the catalog's
    for path in ("/api/v1/credits/packages", "/api/v1/credits/packages/api"):
        headers = bearer(api_key)
        if not path.endswith("/api"):
            token = member.post(
                "/api/v1/auth/token",
                json={"email": "ada@example.com", "password": "correct horse battery"},
            ).get_json()["accessToken"]
            headers = bearer(token)
        body = member.get(path, headers=headers).get_json()
        assert body["packages"][1] == {
            "id": "pkg_pro",
            "name": "Creator Pack",
            "credits": 500,
            "priceCents": 1999,
        }
    history = editor.get(f"{EDITOR}/history").get_data(as_text=True)
    assert "Creator Pack (credit pack) · Display name" in history
    assert "“Pro Pack” → “Creator Pack”" in history


@pytest.mark.parametrize("config_overrides", [{"PRICING_CACHE_SECONDS": 3600}])
def test_a_publish_moves_the_pricing_page_cache_key(app, editor, config_overrides):
    """The cached pricing page is keyed by the copy version: the editor, who checks the exact
    version, sees the new name at once; anonymous visitors once they stop trusting theirs."""
    anonymous = app.test_client()
    assert "Pro Pack" in anonymous.get("/pricing").get_data(as_text=True)
    assert "Pro Pack" in editor.get("/pricing").get_data(as_text=True)
    post_editor(editor, renamed(app, name="Creator Pack"), button="publish")
    assert "Creator Pack" in editor.get("/pricing").get_data(as_text=True)
    app.config["PRICING_CACHE_SECONDS"] = 0  # as if the trusted time had passed
    assert "Creator Pack" in anonymous.get("/pricing").get_data(as_text=True)


def test_api_checkout_names_the_pack_by_its_copy_and_stripe_by_the_catalog(app, client):
    """POST /credits/checkout's `package` is named as GET /credits/packages names it; what
    Stripe is told (and the ledger line is written from) stays the catalog's name, as for plans
    (`stripe sync-catalog` names products from the catalog, never from published copy)."""
    with app.app_context():
        plan_copy.current_version()
        plan_copy.publish(renamed(app, name="Creator Pack"), author_label="t", base_revision=1)
    headers = bearer(issue_api_key(app, create_user(app)))
    response = client.post(
        "/api/v1/credits/checkout/api", headers=headers, json={"packageId": "pkg_pro"}
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["package"]["name"] == "Creator Pack"
    with app.app_context():
        session = get_gateway().retrieve_checkout_session(body["sessionId"])
    assert session.metadata["pack_name"] == "Pro Pack"


def test_a_pack_added_after_a_publish_is_no_phantom_change(app):
    """Engineering adds a pack: the revision before it compares as if it had the default."""
    document = default_document(app)
    older = copy.deepcopy(document)
    del older["packs"]["pkg_business"]
    with app.app_context():
        assert plan_copy.diff_documents(older, document) == []
        changes = plan_copy.diff_documents(older, renamed(app, "pkg_business", name="Team Pack"))
    assert [(c["before"], c["after"]) for c in changes] == [("Business Pack", "Team Pack")]


def test_copy_import_of_a_file_exported_before_packs_had_copy(app, runner, tmp_path):
    document = without_packs(default_document(app))
    document["plans"]["starter"]["tagline"] = "Imported"
    path = tmp_path / "copy.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    result = runner.invoke(args=["copy", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert "published copy revision 2 (1 changes)" in result.output
    with app.app_context():
        assert plan_copy.published_copy().document["packs"] == default_document(app)["packs"]
