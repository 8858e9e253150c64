"""Bad input: every HTML form of the site, fuzzed with a valid CSRF token; never a 500.

The forms are found the way a browser finds them, on the pages that show them; a state-changing
route that no page showed is fuzzed too, so a new form cannot slip by. The JSON API is fuzzed from
its OpenAPI document by schemathesis in tests/api/test_openapi.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.billing_helpers import start_checkout, subscribe
from tests.conftest import CSRF_RE, AuthActions, create_user, csrf_token
from tests.reliability.test_security import (
    CSRF_EXEMPT_PREFIXES,
    refused_for_csrf,
    state_changing_routes,
)

EXAMPLES_PER_FORM = 30
SPECIAL_VALUES = [
    "",
    " ",
    "\x00",
    "\r\n\t",
    "\u202egnp.exe",
    "\U0001d518\U0001d52b \u2713 \U0001f600",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "{{ 7 * 7 }}",
    "../../etc/passwd",
    "-1",
    "99999999999999999999999",
    "NaN",
    "a" * 100_000,
]
values = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=300),
    st.sampled_from(SPECIAL_VALUES),
    st.integers().map(str),
)


@dataclass
class Form:
    page: str
    action: str
    token: str
    fields: dict[str, list[str]] = field(default_factory=dict)  # name -> known options


class FormParser(HTMLParser):
    """Collects the POST forms of a page with their field names (and select options)."""

    def __init__(self, page: str, token: str) -> None:
        super().__init__()
        self.page, self.token, self.forms, self._select = page, token, [], None
        self._form: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if tag == "form" and (attr.get("method") or "get").lower() == "post":
            action = urljoin(self.page, attr.get("action") or self.page)
            self._form = Form(self.page, action, self.token)
            self.forms.append(self._form)
        elif self._form is not None and tag in ("input", "select", "textarea", "button"):
            name = attr.get("name")
            if name and name != "csrf_token":
                self._form.fields.setdefault(name, [])
                if attr.get("value") and tag in ("input", "button"):
                    self._form.fields[name].append(attr["value"] or "")
            self._select = name if tag == "select" else None
        elif tag == "option" and self._form is not None and self._select:
            self._form.fields[self._select].append(attr.get("value") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None


def forms_on(client, page: str) -> list[Form]:
    response = client.get(page)
    assert response.status_code == 200, (page, response.status_code)
    html = response.get_data(as_text=True)
    match = CSRF_RE.search(html)
    parser = FormParser(page, (match.group(1) or match.group(2)) if match else "")
    parser.feed(html)
    return parser.forms


def fuzz(client, form: Form, figures) -> None:
    """Post `form` EXAMPLES_PER_FORM times with random values; assert no 500."""
    names = list(form.fields) or ["unexpected"]
    field_values = {
        name: st.one_of(values, st.sampled_from(form.fields.get(name) or [""])) for name in names
    }

    @settings(
        max_examples=EXAMPLES_PER_FORM,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.fixed_dictionaries(field_values))
    def post(data: dict[str, str]) -> None:
        response = client.post(form.action, data={**data, "csrf_token": form.token})
        figures.add("bad inputs tried")
        assert response.status_code < 500, (form.action, data, response.status_code)
        assert not refused_for_csrf(response), form.action  # the input reached the form

    post()


def test_every_form_survives_random_input(app, figures):
    create_user(app, "ada@example.com", role="admin")
    create_user(app, "bob@example.com")
    anonymous, ada, bob = app.test_client(), app.test_client(), app.test_client()
    AuthActions(app, ada).login("ada@example.com")
    AuthActions(app, bob).login("bob@example.com")
    app.config["SANDBOX_DELIVER_TO_SELF"] = True
    subscribe(ada)
    ada.post(
        "/account/api-keys", data={"name": "fuzzed", "csrf_token": csrf_token(ada, "/account")}
    )
    portal = ada.post("/billing/portal", data={"csrf_token": csrf_token(ada, "/account")})
    checkout = start_checkout(bob)
    pages = [
        (anonymous, "/login"),
        (anonymous, "/signup"),
        (ada, "/account"),
        (ada, "/pricing"),
        (ada, "/admin/plans"),
        (ada, urlsplit(portal.headers["Location"]).path),
        (bob, urlsplit(checkout.headers["Location"]).path),
    ]
    found = [(client, form) for client, page in pages for form in forms_on(client, page)]
    seen = {urlsplit(form.action).path for _client, form in found}
    # Routes no page showed right now (e.g. revert, rebase, discard): fuzzed blind, as admin.
    for _endpoint, method, path in state_changing_routes(app):
        if method == "POST" and path not in seen and not path.startswith(CSRF_EXEMPT_PREFIXES):
            found.append((ada, Form("/account", path, csrf_token(ada, "/account"))))
    assert len(found) >= 12
    logout = [(c, f) for c, f in found if f.action.endswith("/logout")]
    for client, form in [pair for pair in found if pair not in logout] + logout:
        fuzz(client, form, figures)
