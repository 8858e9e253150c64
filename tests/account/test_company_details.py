"""Company details (`/account/company`): the form reaches Stripe's customer (name, address, one
VAT number), our copy follows Stripe (the form, and customer.* webhooks), bad input gets a clear
400 and changes nothing, and the account page shows the details without asking Stripe."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import csrf_token, sql
from webapp.stripe_gateway import get_gateway

GOOD = {
    "name": "Ada GmbH",
    "country": "DE",
    "line1": "Unter den Linden 1",
    "line2": "",
    "city": "Berlin",
    "postal_code": "10117",
    "state": "",
    "vat_number": "DE 123 456 789",
}


def save(client: FlaskClient, **fields: str):
    token = csrf_token(client, "/account/company")
    return client.post("/account/company", data={"csrf_token": token, **GOOD, **fields})


def customer_of(app: Flask, user_id: int) -> Any:
    [(customer_id,)] = sql(app, "select stripe_customer_id from users where id = :id", id=user_id)
    with app.app_context():
        return get_gateway().retrieve_customer_details(customer_id)


def stored(app: Flask, user_id: int) -> list[Any]:
    return sql(
        app,
        "select name, country, city, tax_id_type, tax_id_value, stripe_tax_id "
        "from company_details where user_id = :id",
        id=user_id,
    )


def test_login_is_required(client: FlaskClient) -> None:
    assert client.get("/account/company").status_code in (302, 303)
    assert client.post("/account/company", data=GOOD).status_code in (302, 303, 400)


def test_saving_reaches_stripe_and_the_account_page(
    app: Flask, auth, client: FlaskClient, user_id: int
) -> None:
    auth.login()
    saved = save(client)
    assert saved.status_code == 303, saved.get_data(as_text=True)[:2000]
    assert saved.headers["Location"].endswith("/account#company")
    assert saved.headers["Cache-Control"] == "no-store"
    customer = customer_of(app, user_id)
    assert customer.name == "Ada GmbH"
    assert (customer.address.country, customer.address.city) == ("DE", "Berlin")
    [tax_id] = customer.tax_ids.data
    assert (tax_id.type, tax_id.value) == ("eu_vat", "DE123456789")
    assert stored(app, user_id) == [
        ("Ada GmbH", "DE", "Berlin", "eu_vat", "DE123456789", tax_id.id)
    ]
    page = client.get("/account").get_data(as_text=True)
    assert 'data-testid="company-name">Ada GmbH<' in page
    assert 'data-testid="company-vat">DE123456789<' in page
    assert "Germany" in page
    form = client.get("/account/company").get_data(as_text=True)
    assert 'value="DE123456789"' in form and 'value="Unter den Linden 1"' in form


def test_a_new_vat_number_replaces_the_old_one_and_an_empty_one_removes_it(
    app: Flask, auth, client: FlaskClient, user_id: int
) -> None:
    auth.login()
    assert save(client).status_code == 303
    first = customer_of(app, user_id).tax_ids.data[0].id
    assert save(client).status_code == 303  # unchanged: the same tax id stays
    assert [t.id for t in customer_of(app, user_id).tax_ids.data] == [first]
    paris = {"country": "FR", "city": "Paris", "postal_code": "75001", "line1": "1 rue de Rivoli"}
    assert save(client, vat_number="FRAB123456789", **paris).status_code == 303
    [second] = customer_of(app, user_id).tax_ids.data
    assert second.value == "FRAB123456789" and second.id != first
    assert save(client, vat_number="", name="").status_code == 303
    customer = customer_of(app, user_id)
    assert customer.tax_ids.data == [] and customer.name is None
    assert stored(app, user_id) == [(None, "DE", "Berlin", None, None, None)]


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"country": "ZZ"}, "Choose a country from the list."),
        ({"city": ""}, "Enter the city."),
        ({"country": "", "vat_number": ""}, "Choose the country of this address."),
        ({"vat_number": "DE12"}, "This is not a VAT number of Germany: it should look like"),
        ({"vat_number": "FR123456789"}, "This is not a VAT number of Germany"),
        (
            {"country": "US", "state": "NY", "vat_number": "123"},
            "VAT numbers can be added for EU countries and the United Kingdom",
        ),
        ({"name": "x" * 201}, "Field cannot be longer than 200 characters."),
    ],
)
def test_bad_input_is_refused_clearly_and_changes_nothing(
    app: Flask, auth, client: FlaskClient, user_id: int, fields: dict[str, str], words: str
) -> None:
    auth.login()
    refused = save(client, **fields)
    assert refused.status_code == 400
    assert words in refused.get_data(as_text=True)
    assert stored(app, user_id) == []


def test_without_a_csrf_token_nothing_is_saved(
    app: Flask, auth, client: FlaskClient, user_id: int
) -> None:
    auth.login()
    assert client.post("/account/company", data=GOOD).status_code == 400
    assert stored(app, user_id) == []


def test_stripe_down_changes_nothing_and_says_so(
    app: Flask, auth, client: FlaskClient, user_id: int
) -> None:
    auth.login()
    token = csrf_token(client, "/account/company")
    app.extensions["stripe_sandbox"].faults.set_api(10, "500", path="/v1/customers")
    refused = client.post("/account/company", data={"csrf_token": token, **GOOD})
    app.extensions["stripe_sandbox"].faults.clear()
    assert refused.status_code == 502
    assert "nothing was changed" in refused.get_data(as_text=True)
    assert stored(app, user_id) == []


def test_details_typed_at_stripe_reach_our_copy_by_webhook(
    app: Flask, auth, client: FlaskClient, user_id: int
) -> None:
    """An edit at Stripe (the Dashboard, or Checkout) arrives as customer.updated and
    customer.tax_id.created: our copy follows, read afresh from Stripe."""
    auth.login()
    assert save(client, vat_number="").status_code == 303
    [(customer_id,)] = sql(app, "select stripe_customer_id from users where id = :id", id=user_id)
    amsterdam = {"country": "NL", "line1": "Dam 1", "city": "Amsterdam", "postal_code": "1012"}
    with app.app_context():
        gateway = get_gateway()
        gateway.update_customer_details(customer_id, name="Ada B.V.", address=amsterdam)
        gateway.create_tax_id(customer_id, tax_type="eu_vat", value="NL123456789B01")
    rows = stored(app, user_id)
    assert rows[0][:5] == ("Ada B.V.", "NL", "Amsterdam", "eu_vat", "NL123456789B01")
    page = client.get("/account").get_data(as_text=True)
    assert 'data-testid="company-vat">NL123456789B01<' in page
