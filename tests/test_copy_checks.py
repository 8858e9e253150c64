"""Copy against the catalog: the credit bullet comes from the catalog, and numbers of credits or
prices in the copy that the catalog contradicts are shown to the editor as warnings."""

from __future__ import annotations

import copy

import pytest

from tests.test_admin import EDITOR, default_document, login_editor, post_editor, public_html
from webapp.catalog import get_catalog
from webapp.copy_checks import disagreements, is_credit_line


@pytest.fixture
def editor(app, client):
    login_editor(app, client)
    return client


@pytest.fixture
def document(app):
    return copy.deepcopy(default_document(app))


def test_the_default_copy_agrees_with_the_catalog(app, document):
    with app.app_context():
        assert disagreements(document, get_catalog()) == []


@pytest.mark.parametrize(
    ("field", "text", "found"),
    [
        ("features", ["5,000 credits/month"], "5,000 credits"),
        ("tagline", "Only $9.99 a month", "$9.99"),
        ("description", "Get 10k credits every month.", "10k credits"),
        ("badge", "Save $30", "$30"),
    ],
)
def test_a_number_the_catalog_contradicts_is_found(app, document, field, text, found):
    document["plans"]["starter"][field] = text
    with app.app_context():
        [problem] = disagreements(document, get_catalog())
    assert problem.text == found and "Starter" in problem.where
    if "credits" in found:
        assert "1,000 credits a month" in str(problem)


@pytest.mark.parametrize(
    "text",
    [
        "1,000 credits a month",
        "12,000 credits a year",
        "$4.99 a month",
        "about $4.16 a month",
        "$49.90 a year",
        "100 free trial credits",
        "Up to 3 seats",
    ],
)
def test_what_the_catalog_says_is_not_flagged(app, document, text):
    document["plans"]["starter"]["tagline"] = text
    with app.app_context():
        assert disagreements(document, get_catalog()) == []


def test_page_copy_may_name_any_plan_but_not_an_invented_one(app, document):
    document["page"]["subheadline"] = "From 1,000 to 30,000 credits; or 7,777 credits for $1.23."
    with app.app_context():
        problems = disagreements(document, get_catalog())
    assert [problem.text for problem in problems] == ["7,777 credits", "$1.23"]


@pytest.mark.parametrize(
    ("line", "credit_line"),
    [
        ("1,000 credits/month", True),
        ("5000 credits per month", True),
        ("10k credits a month", True),
        ("All models", False),
        ("Credits never expire", False),
        ("1,000 credits and more", False),
    ],
)
def test_credit_lines(line, credit_line):
    assert is_credit_line(line) is credit_line


def test_the_card_credit_bullet_comes_from_the_catalog(app, editor, document):
    document["plans"]["starter"]["features"] = ["5,000 credits/month", "All models"]
    response = post_editor(editor, document, button="save")
    assert response.status_code == 303
    page = editor.get(EDITOR).get_data(as_text=True)
    assert 'data-testid="copy-warnings"' in page and "“5,000 credits”" in page
    # A warning, not a refusal: it publishes, and the card still says the catalog's 1,000.
    post_editor(editor, document, button="publish")
    card = public_html(app).split('id="plan-starter"')[1].split("</article>")[0]
    assert "5,000" not in card and "<strong>1,000</strong> credits a month" in card
    assert "All models" in card


def test_no_warning_for_the_default_copy(editor):
    assert 'data-testid="copy-warnings"' not in editor.get(EDITOR).get_data(as_text=True)
