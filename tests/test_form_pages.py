"""Forms across the site, as the test client sees them: a stale CSRF token gets a retry page that
keeps what was typed (never a password, never for another site's form), one id per element on
pages with several forms, the error summary, one date style and the sandbox banner's landmark."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, date, datetime

import pytest

from tests.conftest import AuthActions, create_user
from webapp.templating import format_date, format_datetime

PASSWORD = "correct horse battery"
OURS = {"Origin": "http://localhost"}


def test_a_stale_token_from_our_page_keeps_the_input_but_not_the_password(client):
    client.get("/login")  # a session exists; its token is not the one sent
    response = client.post(
        "/login",
        data={"csrf_token": "stale", "email": "ada@example.com", "password": "secret words"},
        headers=OURS,
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "This page was open too long" in html and "CSRF" not in html
    assert 'name="email" value="ada@example.com"' in html
    assert "secret words" not in html and 'type="password" id="retry-1" name="password"' in html
    fresh = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    assert fresh != "stale"


def test_the_retry_sends_the_form_again(app, client):
    create_user(app, email="ada@example.com", password=PASSWORD)
    client.get("/login")
    stale = client.post(
        "/login",
        data={"csrf_token": "stale", "email": "ada@example.com", "password": PASSWORD},
        headers=OURS,
    ).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', stale).group(1)
    again = client.post(
        "/login",
        data={"csrf_token": token, "email": "ada@example.com", "password": PASSWORD},
        headers=OURS,
    )
    assert again.status_code == 303 and again.headers["Location"].endswith("/account")


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {}],
)
def test_a_form_from_elsewhere_gets_the_message_without_its_values(client, headers):
    response = client.post(
        "/account/delete",
        data={"csrf_token": "forged", "confirm": "DELETE", "email": "victim@example.com"},
        headers=headers,
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and "This page was open too long" in html
    assert "victim@example.com" not in html and "Send again" not in html


def test_api_csrf_errors_stay_json(client):
    response = client.post("/api/v1/checkout/sessions/api", data={"x": "1"})
    assert response.is_json


def ids(html: str) -> Counter[str]:
    return Counter(re.findall(r'\bid="([^"]+)"', html))


def test_the_account_page_repeats_no_id(app, client):
    create_user(app, email="ada@example.com", password=PASSWORD)
    AuthActions(app, client).login(email="ada@example.com", password=PASSWORD)
    client.post(
        "/account/api-keys",
        data={"csrf_token": _token(client), "name": "One", "scope": "read", "expires": "never"},
    )
    html = client.get("/account").get_data(as_text=True)
    assert html.count('name="csrf_token"') >= 3  # logout, billing, API keys…
    assert [name for name, count in ids(html).items() if count > 1] == []


def _token(client) -> str:
    html = client.get("/account").get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


def test_a_failed_form_has_a_focused_summary_linking_its_fields(client):
    html = client.get("/signup").get_data(as_text=True)
    assert "data-error-summary" not in html and "<script" not in html
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    failed = client.post("/signup", data={"csrf_token": token, "email": "x@example.com"})
    html = failed.get_data(as_text=True)
    summary = html.split("data-error-summary")[1].split("</div>")[0]
    assert 'tabindex="-1"' in html.split("data-error-summary")[0][-120:]
    assert '<a href="#password">Password:' in summary
    assert 'value="x@example.com"' in html  # the rest of the input is kept
    assert "js/forms.js" in html


@pytest.mark.parametrize(
    ("moment", "shown"),
    [
        (date(2026, 12, 3), "3 Dec 2026"),
        (datetime(2026, 12, 3, 9, 5), "3 Dec 2026"),
        (datetime(2026, 12, 3, 23, 30, tzinfo=UTC), "3 Dec 2026"),
    ],
)
def test_one_date_style(moment, shown):
    assert format_date(moment) == shown


def test_a_moment_is_said_in_utc():
    from datetime import timedelta, timezone

    paris = timezone(timedelta(hours=1))
    assert format_datetime(datetime(2026, 12, 4, 0, 30, tzinfo=paris)) == "3 Dec 2026 at 23:30 UTC"


def test_no_page_template_formats_its_own_dates():
    from pathlib import Path

    templates = Path(__file__).resolve().parent.parent / "templates"
    offenders = [
        str(path.relative_to(templates))
        for path in templates.rglob("*.*")
        if "strftime" in path.read_text()
    ]
    assert offenders == []
