"""Credit packs: buying one without a plan, the success page and webhooks granting it once,
refunds taking it back, and the sandbox's payment-mode Checkout behind it (real SDK)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.billing_helpers import VISA_DECLINED, pay, sandbox_events
from tests.conftest import csrf_token, sql
from webapp.catalog import get_catalog
from webapp.stripe_catalog import check_catalog
from webapp.stripe_gateway import InvalidRequest, get_gateway


@pytest.fixture
def logged_in(app, auth, user_id):
    auth.login()
    return user_id


def start_pack(client, pack: str = "pkg_pro"):
    token = csrf_token(client, "/account")
    return client.post("/checkout/pack", data={"pack": pack, "csrf_token": token})


def buy_pack(client, pack: str = "pkg_pro") -> str:
    """Start a pack checkout and pay it; returns the session id of the success URL."""
    started = start_pack(client, pack)
    assert started.status_code == 303, started.get_data(as_text=True)
    paid = pay(client, started.headers["Location"])
    assert paid.status_code == 303, paid.get_data(as_text=True)
    success = urlsplit(paid.headers["Location"])
    assert success.path == "/checkout/pack/success"
    return parse_qs(success.query)["session_id"][0]


def ledger(app) -> list[tuple]:
    return sql(
        app,
        "select amount, type, grant_key, description, invoice_id from credit_entries order by id",
    )


def balance(app) -> int:
    return sql(app, "select coalesce(sum(amount), 0) from credit_entries")[0][0]


def test_a_pack_is_bought_without_a_subscription_and_granted_once(app, client, logged_in):
    session_id = buy_pack(client)
    page = client.get(f"/checkout/pack/success?session_id={session_id}")
    assert page.status_code == 200
    assert "500 credits added" in page.get_data(as_text=True)
    # Again (a reload): still one grant, and the page says the same.
    assert "500 credits added" in client.get(
        f"/checkout/pack/success?session_id={session_id}"
    ).get_data(as_text=True)
    [(amount, kind, key, description, invoice_id)] = ledger(app)
    assert (amount, kind, key, description) == (500, "purchase", f"pack:{session_id}", "Pro Pack")
    assert sql(app, "select count(*) from subscriptions")[0][0] == 0
    with app.app_context():
        session = get_gateway().retrieve_checkout_session(session_id)
        assert session.mode == "payment"
        assert session.payment_status == "paid"
        assert session.invoice == invoice_id
        assert session.metadata["pack_id"] == "pkg_pro"
        invoice = get_gateway().retrieve_invoice(invoice_id)
        # The buyer's receipt: a paid invoice of no subscription, for the pack's price.
        assert (invoice.status, invoice.amount_paid, invoice.parent) == ("paid", 1999, None)
        assert invoice.metadata["pack_id"] == "pkg_pro"
    # It is among the member's invoices (the receipt), and the account page shows the balance.
    assert sql(app, "select id, status, total from invoices") == [(invoice_id, "paid", 1999)]
    account = client.get("/account").get_data(as_text=True)
    assert 'data-testid="credit-balance">500<' in account
    assert "Pro Pack" in account
    [(status,)] = sql(app, "select status from checkout_sessions")
    assert status == "complete"


def test_the_webhook_alone_grants_the_pack(app, client, logged_in):
    """Stripe's events arrive before the buyer's browser does (sync delivery in tests)."""
    buy_pack(client)  # the success page is never visited
    assert [row[:2] for row in ledger(app)] == [(500, "purchase")]
    types = {e["type"] for e in sandbox_events(app)}
    assert {"checkout.session.completed", "invoice.paid", "charge.succeeded"} <= types


def test_buy_credits_on_the_pricing_and_account_pages(app, client, logged_in):
    for path in ("/pricing", "/account"):
        html = client.get(path).get_data(as_text=True)
        assert 'data-testid="buy-credits"' in html
        for pack in app.extensions["catalog"].packs.values():
            assert f'value="{pack.id}"' in html and pack.name in html


def test_logged_out_visitors_see_packs_that_lead_to_log_in(client):
    html = client.get("/pricing").get_data(as_text=True)
    assert 'href="/login?next=/account" aria-label="Buy Pro Pack (with an account)"' in html
    assert 'action="/checkout/pack"' not in html


def test_pack_checkout_needs_login_and_csrf(app, client, auth, user_id):
    token = csrf_token(client, "/login")
    response = client.post("/checkout/pack", data={"pack": "pkg_pro", "csrf_token": token})
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    auth.login()
    assert client.post("/checkout/pack", data={"pack": "pkg_pro"}).status_code == 400
    assert sql(app, "select count(*) from checkout_sessions")[0][0] == 0


@pytest.mark.parametrize("pack", ["pkg_gold", "", "starter"])
def test_an_unknown_pack_is_a_400_page(app, client, logged_in, pack):
    response = start_pack(client, pack)
    assert response.status_code == 400
    assert "That credit pack isn" in response.get_data(as_text=True)
    assert sql(app, "select count(*) from checkout_sessions")[0][0] == 0


def test_a_double_click_reuses_the_open_session(app, client, logged_in):
    first = start_pack(client).headers["Location"]
    second = start_pack(client).headers["Location"]
    assert first == second
    assert sql(app, "select count(*) from checkout_sessions")[0][0] == 1


def test_a_pack_checkout_leaves_a_plan_checkout_open_and_vice_versa(app, client, logged_in):
    from tests.billing_helpers import start_checkout

    start_pack(client)
    start_checkout(client, "starter", "monthly")
    rows = sql(app, "select cycle, status from checkout_sessions order by id")
    assert rows == [("pack", "open"), ("monthly", "open")]


def test_a_declined_card_grants_nothing(app, client, logged_in):
    started = start_pack(client)
    response = pay(client, started.headers["Location"], VISA_DECLINED)
    assert response.status_code in (200, 400, 402)
    assert ledger(app) == []


def test_a_subscriber_can_buy_a_pack_too(app, client, logged_in):
    from tests.billing_helpers import subscribe

    subscribe(client, "starter", "monthly")
    buy_pack(client, "pkg_starter")
    assert balance(app) == 1000 + 100


def test_each_success_page_knows_only_its_own_kind_of_session(app, client, logged_in):
    from tests.billing_helpers import subscribe

    pack_session = buy_pack(client, "pkg_starter")
    plan_session = subscribe(client, "starter", "monthly")
    assert client.get(f"/checkout/success?session_id={pack_session}").status_code == 404
    assert client.get(f"/checkout/pack/success?session_id={plan_session}").status_code == 404
    assert client.get("/checkout/pack/success?session_id=cs_nope").status_code == 404
    assert client.get("/checkout/pack/success?session_id=nope").status_code == 404


def test_someone_elses_pack_session_is_404(app, client, logged_in):
    session_id = buy_pack(client)
    client.post("/logout", data={"csrf_token": csrf_token(client, "/account")})
    from tests.conftest import create_user

    create_user(app, "other@example.com", "correct horse battery staple")
    client.post(
        "/login",
        data={
            "email": "other@example.com",
            "password": "correct horse battery staple",
            "csrf_token": csrf_token(client, "/login"),
        },
    )
    assert client.get(f"/checkout/pack/success?session_id={session_id}").status_code == 404


# --- refunds -------------------------------------------------------------------------------


def refund(app, session_id: str, amount: int | None = None, key: str = "r1") -> None:
    with app.app_context():
        gateway = get_gateway()
        intent = gateway.retrieve_checkout_session(session_id).payment_intent
        gateway.create_refund(
            payment_intent_id=intent,
            reason="requested_by_customer",
            metadata={},
            idempotency_key=f"{session_id}-{key}",
            amount=amount,
        )


def test_a_full_refund_takes_the_pack_back_once(app, client, logged_in):
    session_id = buy_pack(client)
    refund(app, session_id)
    assert balance(app) == 0
    rows = ledger(app)
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (500, "purchase", f"pack:{session_id}"),
        (-500, "refund", f"pack:{session_id}:1"),
    ]
    assert rows[1][3] == "Pro Pack: refunded"
    # Every event again, and the success page: nothing more.
    from tests.billing_helpers import post_event

    for event in sandbox_events(app):
        post_event(client, event)
    client.get(f"/checkout/pack/success?session_id={session_id}")
    assert len(ledger(app)) == 2 and balance(app) == 0


def test_a_partial_refund_takes_back_its_share_rounded_in_our_favour(app, client, logged_in):
    session_id = buy_pack(client)  # 500 credits for $19.99
    refund(app, session_id, amount=1000)
    # Kept: 999/1999 of 500 = 249.87…, rounded down to 249.
    assert balance(app) == 249
    refund(app, session_id, amount=999, key="r2")
    assert balance(app) == 0


def test_a_refund_read_before_the_grant_is_not_lost(app, client, logged_in, config_overrides):
    """The refund's event is applied before the pack is granted (its fulfilment read Stripe
    earlier and commits later): the stored later read wins, and the pack is taken back."""
    from webapp.billing.packs import apply_pack_facts, fetch_pack_facts
    from webapp.billing.sync import apply_invoice_state, fetch_invoice_state
    from webapp.extensions import db

    started = start_pack(client)
    # Pay with webhooks off for this session: only what this test applies happens.
    app.config["SANDBOX_DELIVER_TO_SELF"] = False
    paid = pay(client, started.headers["Location"])
    session_id = parse_qs(urlsplit(paid.headers["Location"]).query)["session_id"][0]
    with app.test_request_context():
        stale = fetch_pack_facts(session_id)
    refund(app, session_id)
    with app.test_request_context():
        from webapp.billing.credits import Cause

        state = fetch_invoice_state(stale.invoice.id)
        apply_invoice_state(state, Cause(stale.invoice.id, "refund"))
        db.session.commit()
        apply_pack_facts(stale)
        db.session.commit()
    assert balance(app) == 0


# --- Stripe's side: the catalog and the sandbox --------------------------------------------


def test_sync_sells_each_pack_as_a_one_time_price(app):
    with app.app_context():
        gateway = get_gateway()
        for pack in get_catalog().packs.values():
            price = gateway.price_for(pack.lookup_key)
            assert (price.type, price.recurring) == ("one_time", None)
            assert (price.unit_amount, price.currency) == (pack.amount_cents, "usd")
            assert price.metadata["pack_id"] == pack.id
        assert check_catalog(gateway, get_catalog()) == []


def test_the_sandbox_refuses_what_stripe_refuses_in_payment_mode(app, logged_in):
    with app.app_context():
        gateway = get_gateway()
        recurring = gateway.price_for("starter_monthly")
        one_time = gateway.price_for("pack_pkg_pro")
        customer = gateway.create_customer(email="a@example.com", user_id=1, idempotency_key="c1")
        sessions = gateway.client.v1.checkout.sessions
        base = {"customer": customer.id, "success_url": "https://x.example/s"}
        with pytest.raises(Exception, match="recurring price"):
            sessions.create(
                params={
                    **base,
                    "mode": "payment",
                    "line_items": [{"price": recurring.id, "quantity": 1}],
                    "invoice_creation": {"enabled": True},
                }
            )
        with pytest.raises(Exception, match="payment` mode"):
            sessions.create(
                params={
                    **base,
                    "mode": "subscription",
                    "line_items": [{"price": recurring.id, "quantity": 1}],
                    "invoice_creation": {"enabled": True},
                }
            )
        with pytest.raises(Exception, match="subscription_data"):
            sessions.create(
                params={
                    **base,
                    "mode": "payment",
                    "line_items": [{"price": one_time.id, "quantity": 1}],
                    "invoice_creation": {"enabled": True},
                    "subscription_data": {"metadata": {"a": "b"}},
                }
            )
    assert InvalidRequest  # the gateway's own class for these, used by callers


def test_a_re_priced_pack_gets_a_new_price_and_the_old_one_is_archived(app, database_url, tmp_path):
    import shutil

    from tests.conftest import make_app
    from webapp.catalog import CATALOG_PATH
    from webapp.extensions import db
    from webapp.stripe_catalog import sync_catalog

    with app.app_context():
        old = get_gateway().price_for("pack_pkg_pro")
    path = tmp_path / "catalog.toml"
    shutil.copy(CATALOG_PATH, path)
    path.write_text(path.read_text().replace("price_cents = 1999", "price_cents = 2499"))
    changed = make_app(database_url, CATALOG_PATH=str(path), SANDBOX_DELIVER_TO_SELF=False)
    try:
        with changed.app_context():
            gateway = get_gateway()
            catalog = get_catalog()
            assert any("pack_pkg_pro" in line for line in check_catalog(gateway, catalog))
            changes = sync_catalog(gateway, catalog)
            assert any("archived price " + old.id in line for line in changes)
            gateway.forget_prices()
            new = gateway.price_for("pack_pkg_pro")
            assert (new.unit_amount, new.type) == (2499, "one_time") and new.id != old.id
            assert check_catalog(gateway, catalog) == []
            assert sync_catalog(gateway, catalog) == []
    finally:
        with changed.app_context():
            db.engine.dispose()


# --- the catalog file --------------------------------------------------------------------------


def _catalog_with(packs: str):
    import tomllib

    from webapp.catalog import CATALOG_PATH, parse_catalog

    text = CATALOG_PATH.read_text()
    text = text[: text.index("[[packs]]")] + packs
    return parse_catalog(tomllib.loads(text))


def test_the_catalog_parses_packs_in_order():
    catalog = _catalog_with(
        '[[packs]]\nid = "pkg_b"\nname = "B"\ncredits = 2\nprice_cents = 3\n'
        '[[packs]]\nid = "pkg_a"\nname = "A"\ncredits = 1\nprice_cents = 1\n'
    )
    assert list(catalog.packs) == ["pkg_b", "pkg_a"]
    pack = catalog.pack("pkg_a")
    assert (pack.credits, pack.amount_cents, pack.lookup_key) == (1, 1, "pack_pkg_a")
    assert _catalog_with("").packs == {}


@pytest.mark.parametrize(
    ("packs", "message"),
    [
        ('[[packs]]\nid = "gold"\nname = "G"\ncredits = 1\nprice_cents = 1\n', "pkg_name"),
        ('[[packs]]\nid = "pkg_a"\nname = " "\ncredits = 1\nprice_cents = 1\n', "name"),
        ('[[packs]]\nid = "pkg_a"\nname = "A"\ncredits = 0\nprice_cents = 1\n', "positive"),
        ('[[packs]]\nid = "pkg_a"\nname = "A"\ncredits = 1\nprice_cents = -5\n', "positive"),
        ('[[packs]]\nid = "pkg_a"\nname = "A"\ncredits = 1.5\nprice_cents = 1\n', "integer"),
        ('[[packs]]\nid = "pkg_a"\nname = "A"\nprice_cents = 1\n', "missing 'credits'"),
        (
            '[[packs]]\nid = "pkg_a"\nname = "A"\ncredits = 1\nprice_cents = 1\n' * 2,
            "appears twice",
        ),
    ],
)
def test_the_catalog_refuses_bad_packs(packs, message):
    from webapp.catalog import CatalogError, UnknownPack

    with pytest.raises(CatalogError, match=message):
        _catalog_with(packs)
    with pytest.raises(UnknownPack):
        _catalog_with("").pack("pkg_pro")


@pytest.mark.parametrize("config_overrides", [{"SANDBOX_DELIVER_TO_SELF": False}])
def test_async_payment_succeeded_grants_through_the_same_function(app, client, logged_in):
    """`checkout.session.async_payment_succeeded` (a delayed payment method) re-reads the
    session as `completed` does; the sandbox pays by card only, so its event is the completed
    one's payload under the other type, as Stripe sends the same session object."""
    from tests.billing_helpers import post_event

    session_id = buy_pack(client)
    assert ledger(app) == []  # nothing delivered yet
    [completed] = [
        e
        for e in sandbox_events(app, ("checkout.session.completed",))
        if e["data"]["object"]["id"] == session_id
    ]
    async_event = {**completed, "id": completed["id"] + "_async"}
    async_event["type"] = "checkout.session.async_payment_succeeded"
    assert post_event(client, async_event).status_code == 200
    assert [r[:3] for r in ledger(app)] == [(500, "purchase", f"pack:{session_id}")]
    assert post_event(client, completed).status_code == 200
    assert len(ledger(app)) == 1
