"""Published copy: revision 1, the per-version cache, atomic publishing, validation and the CLI."""

from __future__ import annotations

import copy
import json
import threading
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, insert

from tests.conftest import make_app, sql
from webapp import plan_copy
from webapp.catalog import get_catalog
from webapp.extensions import db
from webapp.models import CopyRevision
from webapp.page_cache import CSRF_PLACEHOLDER


def default_document(app: Flask) -> dict[str, Any]:
    with app.app_context():
        return copy.deepcopy(get_catalog().default_copy())


def publish(app: Flask, document: dict[str, Any], base: int | None = None) -> int:
    with app.app_context():
        revision = plan_copy.publish(document, author_label="test", base_revision=base)
        return revision.number


def with_tagline(app: Flask, tagline: str) -> dict[str, Any]:
    document = default_document(app)
    document["plans"]["professional"]["tagline"] = tagline
    return document


# --- Revision 1 and reading -----------------------------------------------------------------


def test_fresh_install_serves_catalog_default_as_revision_1(app):
    with app.app_context():
        published = plan_copy.published_copy()
        assert published.version == 1
        assert published.document == get_catalog().default_copy()
        assert published.plan("professional")["tagline"] == "For individuals shipping real work."
        assert published.page["headline"] == "Simple pricing for every stage"
    with app.app_context():
        assert plan_copy.published_copy().version == 1
    assert sql(app, "select number, author_label from copy_revisions") == [(1, "catalog default")]


def test_racing_first_reads_create_revision_1_once(app):
    with app.app_context():
        plan_copy._create_first_revision()
        plan_copy._create_first_revision()  # the loser's unique violation is swallowed
        assert plan_copy.current_version() == 1
    assert sql(app, "select count(*) from copy_revisions")[0][0] == 1


def test_the_current_version_costs_one_query_per_request(app):
    with app.app_context():
        plan_copy.published_copy()  # warm: creates revision 1, parses it
    statements: list[str] = []
    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", _record(statements))
        try:
            first = plan_copy.published_copy()
            again = plan_copy.published_copy()
        finally:
            event.remove(db.engine, "before_cursor_execute", _record(statements))
    assert len([s for s in statements if "copy_revisions" in s]) == 1
    assert first is again


_recorders: dict[int, Any] = {}


def _record(statements: list[str]):
    # event.remove needs the very same function object that was listened.
    key = id(statements)
    if key not in _recorders:
        _recorders[key] = lambda conn, cursor, statement, *args: statements.append(statement)
    return _recorders[key]


def test_parsed_copy_is_reused_until_the_version_moves(app):
    with app.app_context():
        first = plan_copy.published_copy()
    with app.app_context():
        assert plan_copy.published_copy() is first
    publish(app, with_tagline(app, "Moved"))
    with app.app_context():
        fresh = plan_copy.published_copy()
    assert fresh.version == 2 and fresh.plan("professional")["tagline"] == "Moved"


def test_two_app_instances_sharing_a_database_both_serve_a_publish(app, database_url):
    worker_a, worker_b = make_app(database_url), make_app(database_url)
    try:
        for worker in (worker_a, worker_b):
            html = worker.test_client().get("/pricing").get_data(as_text=True)
            assert "For individuals shipping real work." in html  # both cached revision 1
        publish(worker_a, with_tagline(worker_a, "Published on worker A"))
        for worker in (worker_b, worker_a):
            html = worker.test_client().get("/pricing").get_data(as_text=True)
            assert "Published on worker A" in html
            assert "For individuals shipping real work." not in html
    finally:
        for worker in (worker_a, worker_b):
            with worker.app_context():
                db.session.remove()
                db.engine.dispose()


def test_anonymous_page_trusts_its_copy_version_for_pricing_cache_seconds(app):
    app.config["PRICING_CACHE_SECONDS"] = 3600
    client = app.test_client()
    assert "For individuals shipping real work." in client.get("/pricing").get_data(as_text=True)
    publish(app, with_tagline(app, "Seen once the cache time is up"))
    assert "Seen once" not in client.get("/pricing").get_data(as_text=True)
    app.config["PRICING_CACHE_SECONDS"] = 0  # as if the hour had passed
    assert "Seen once" in client.get("/pricing").get_data(as_text=True)


# --- Publishing -----------------------------------------------------------------------------


def test_publish_records_author_changes_and_summary(app):
    assert publish(app, with_tagline(app, "New tagline"), base=1) == 2
    with app.app_context():
        revision = plan_copy.latest_revision()
        assert revision.author_label == "test"
        assert revision.changes == [
            {
                "where": "Professional",
                "field": "Tagline",
                "before": "For individuals shipping real work.",
                "after": "New tagline",
                "note": "",
            }
        ]
        assert revision.summary == "Changed Professional tagline"


def test_publish_on_a_stale_base_is_refused(app):
    publish(app, with_tagline(app, "First"), base=1)
    with app.app_context(), pytest.raises(plan_copy.StaleDraft) as refused:
        plan_copy.publish(with_tagline(app, "Second"), author_label="late", base_revision=1)
    assert refused.value.latest.number == 2
    assert sql(app, "select count(*) from copy_revisions")[0][0] == 2


def test_publish_that_loses_the_race_for_the_number_is_refused(app, monkeypatch):
    """Another worker commits revision 2 between our read of revision 1 and our insert."""
    with app.app_context():
        plan_copy.current_version()
    real_diff = plan_copy.diff_documents

    def diff_then_competitor_commits(before, after):
        with db.engine.begin() as connection:
            row = {"number": 2, "document": before, "author_label": "rival", "changes": []}
            connection.execute(insert(CopyRevision).values(**row, summary="rival"))
        return real_diff(before, after)

    monkeypatch.setattr(plan_copy, "diff_documents", diff_then_competitor_commits)
    with app.app_context(), pytest.raises(plan_copy.StaleDraft) as refused:
        plan_copy.publish(with_tagline(app, "Mine"), author_label="me", base_revision=1)
    assert refused.value.latest.author_label == "rival"
    assert sql(app, "select number, author_label from copy_revisions order by number") == [
        (1, "catalog default"),
        (2, "rival"),
    ]


def test_publishing_identical_copy_is_refused(app):
    with app.app_context(), pytest.raises(plan_copy.NothingToPublish):
        plan_copy.publish(default_document(app), author_label="x", base_revision=1)


def test_revert_publishes_a_new_revision(app):
    publish(app, with_tagline(app, "Two"))
    with app.app_context():
        revision = plan_copy.revert_to(1, author_label="x", author_id=None, expected_latest=2)
        assert (revision.number, revision.reverted_from) == (3, 1)
    with app.app_context():
        assert plan_copy.published_copy().document == default_document(app)


# --- Validation -----------------------------------------------------------------------------


def _problems(app: Flask, document: Any) -> list[str]:
    with app.app_context(), pytest.raises(plan_copy.InvalidCopy) as invalid:
        plan_copy.validate_document(document)
    return invalid.value.problems


@pytest.mark.parametrize(
    "money_field", ["monthly_cents", "yearly_cents", "monthly_credits", "id", "lookup_key"]
)
def test_price_and_credit_fields_are_not_copy(app, money_field):
    document = default_document(app)
    document["plans"]["professional"][money_field] = 1
    problems = _problems(app, document)
    assert any(money_field in p and "engineering changes them" in p for p in problems)


def test_unknown_and_missing_plans_are_refused(app):
    document = default_document(app)
    document["plans"]["free"] = document["plans"].pop("starter")
    problems = _problems(app, document)
    assert "plans: unknown plan 'free'" in problems[0]
    assert "plans: missing plan 'starter'" in problems[1]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": ""}, "plans.professional.name: is required"),
        ({"tagline": "x" * 121}, "at most 120 characters"),
        ({"features": []}, "list at least one feature"),
        ({"features": "one"}, "must be a list"),
        ({"highlighted": "yes"}, "must be true or false"),
        ({"display_order": True}, "whole number from 1 to 99"),
        ({"description": "[x](javascript:alert(1))"}, "must start with http://"),
        ({"description": "<javascript:alert(1)>"}, "must start with http://"),
    ],
)
def test_plan_rules(app, change, message):
    document = default_document(app)
    document["plans"]["professional"].update(change)
    assert any(message in problem for problem in _problems(app, document))


def test_copy_with_the_csrf_placeholder_is_refused_on_every_way_in(app, runner, tmp_path):
    document = with_tagline(app, f"Only today: CSRF-Placeholder-4E1D9C {CSRF_PLACEHOLDER}")
    assert any("cannot contain" in problem for problem in _problems(app, document))
    with pytest.raises(plan_copy.InvalidCopy):
        publish(app, document)
    path = tmp_path / "copy.json"
    path.write_text(json.dumps(document))
    result = runner.invoke(args=["copy", "import", str(path)])
    assert result.exit_code != 0 and "cannot contain" in result.output


def test_text_is_cleaned_of_control_characters_and_line_breaks(app):
    document = default_document(app)
    document["plans"]["professional"]["tagline"] = "  Two\nlines\x00 here  "
    with app.app_context():
        clean = plan_copy.validate_document(document)
    assert clean["plans"]["professional"]["tagline"] == "Two lines here"


def test_merge_keeps_both_sides_and_names_conflicts(app):
    base = default_document(app)
    mine, theirs = copy.deepcopy(base), copy.deepcopy(base)
    mine["plans"]["starter"]["tagline"] = "mine"
    mine["plans"]["agency"]["badge"] = "mine"
    theirs["plans"]["business"]["tagline"] = "theirs"
    theirs["plans"]["agency"]["badge"] = "theirs"
    merged, conflicts = plan_copy.merge_documents(base, mine, theirs)
    assert merged["plans"]["starter"]["tagline"] == "mine"
    assert merged["plans"]["business"]["tagline"] == "theirs"
    assert merged["plans"]["agency"]["badge"] == "mine"
    assert conflicts == ["Agency · Badge"]


def test_diff_describes_list_changes():
    before = {"page": {"headline": "h", "subheadline": "", "faq": []}, "plans": {}}
    after = copy.deepcopy(before)
    before["plans"]["p"] = {"name": "P", "features": ["a", "b", "c"]}
    after["plans"]["p"] = {"name": "P", "features": ["c", "a", "d"]}
    [change] = plan_copy.diff_documents(before, after)
    assert change["note"] == "added “d”; removed “b”; reordered"


# --- Command line ---------------------------------------------------------------------------


def test_export_then_import_round_trip(app, runner, tmp_path):
    exported = runner.invoke(args=["copy", "export"])
    assert exported.exit_code == 0, exported.output
    document = json.loads(exported.stdout)
    assert document == default_document(app)

    document["plans"]["professional"]["tagline"] = "Imported tagline"
    path = tmp_path / "copy.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    imported = runner.invoke(args=["copy", "import", str(path)])
    assert imported.exit_code == 0, imported.output
    assert "published copy revision 2 (1 changes)" in imported.output

    again = runner.invoke(args=["copy", "export"])
    assert json.loads(again.stdout) == document
    assert "Imported tagline" in app.test_client().get("/pricing").get_data(as_text=True)
    assert runner.invoke(args=["copy", "import", str(path)]).output.startswith("nothing to import")


def test_import_refuses_invalid_copy_and_prices(app, runner, tmp_path):
    document = default_document(app)
    document["plans"]["professional"]["monthly_cents"] = 1
    document["plans"]["starter"]["name"] = ""
    path = tmp_path / "copy.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    result = runner.invoke(args=["copy", "import", str(path)])
    assert result.exit_code == 1
    assert "unknown field 'monthly_cents'" in result.output
    assert "plans.starter.name: is required" in result.output
    assert sql(app, "select count(*) from copy_revisions where number > 1")[0][0] == 0

    path.write_text("{not json", encoding="utf-8")
    result = runner.invoke(args=["copy", "import", str(path)])
    assert result.exit_code == 1 and "not valid JSON" in result.output


def test_a_plan_added_to_the_catalog_after_a_publish_still_has_copy(app):
    with app.app_context():
        plan_copy.current_version()
    with app.app_context():
        stored = default_document(app)
        del stored["plans"]["agency"]  # as if agency were added to catalog.toml later
        db.session.execute(
            CopyRevision.__table__.update().where(CopyRevision.number == 1).values(document=stored)
        )
        db.session.commit()
    with app.app_context():
        published = plan_copy.published_copy()
        assert published.plan("agency")["name"] == "Agency"
    assert "Agency" in app.test_client().get("/pricing").get_data(as_text=True)


def test_api_plans_show_the_published_copy(app):
    if "api" not in app.blueprints:
        pytest.skip("the JSON API is not registered in this tree")
    publish(app, with_tagline(app, "From the API"))
    body = app.test_client().get("/api/v1/plans").get_json()
    assert "From the API" in json.dumps(body)


def test_concurrent_publishes_from_many_workers_make_exactly_one_revision(app, database_url):
    """Several workers publish different copy on the same base at the same moment."""
    with app.app_context():
        plan_copy.current_version()
    workers = [make_app(database_url) for _ in range(4)]
    start = threading.Barrier(len(workers))
    outcomes: list[str] = []

    def publish_from(worker: Flask, index: int) -> None:
        document = with_tagline(worker, f"Worker {index}")
        with worker.app_context():
            start.wait()
            try:
                plan_copy.publish(document, author_label=f"w{index}", base_revision=1)
                outcomes.append("published")
            except plan_copy.StaleDraft:
                outcomes.append("refused")
            finally:
                db.session.remove()
                db.engine.dispose()

    threads = [threading.Thread(target=publish_from, args=(w, i)) for i, w in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["published", "refused", "refused", "refused"]
    assert sql(app, "select count(*) from copy_revisions")[0][0] == 2
