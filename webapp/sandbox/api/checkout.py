"""Checkout Sessions (subscription mode) and their line items."""

from __future__ import annotations

from typing import Any

from webapp.sandbox import objects, operations
from webapp.sandbox.api.routing import LIST, Call, includable, merge_metadata, paginate, route
from webapp.sandbox.operations import trials
from webapp.sandbox.store import Store, new_id
from webapp.sandbox.wire import MAP, SCALAR, as_bool, as_int, invalid

SESSION_CREATE = {
    "mode": SCALAR,
    "customer": SCALAR,
    "customer_email": SCALAR,
    "line_items": [{"price": SCALAR, "quantity": SCALAR}],
    "client_reference_id": SCALAR,
    "metadata": MAP,
    "subscription_data": {
        "metadata": MAP,
        "description": SCALAR,
        "billing_mode": {"type": SCALAR, "flexible": {"proration_discounts": SCALAR}},
        "trial_period_days": SCALAR,
        "trial_settings": {"end_behavior": {"missing_payment_method": SCALAR}},
    },
    "payment_method_collection": SCALAR,
    "allow_promotion_codes": SCALAR,
    "consent_collection": {"terms_of_service": SCALAR},
    "custom_text": {"terms_of_service_acceptance": {"message": SCALAR}},
    "success_url": SCALAR,
    "cancel_url": SCALAR,
    "expires_at": SCALAR,
    "payment_method_types": [SCALAR],
    "billing_address_collection": SCALAR,
    "automatic_tax": {"enabled": SCALAR, "liability": {"type": SCALAR, "account": SCALAR}},
    "tax_id_collection": {"enabled": SCALAR, "required": SCALAR},
    "customer_update": {"address": SCALAR, "name": SCALAR, "shipping": SCALAR},
    "locale": SCALAR,
    "ui_mode": SCALAR,
    # Payment mode (SDK params/checkout/_session_create_params.py).
    "invoice_creation": {
        "enabled": SCALAR,
        "invoice_data": {"metadata": MAP, "description": SCALAR, "footer": SCALAR},
    },
    "payment_intent_data": {"metadata": MAP, "description": SCALAR},
}


@route("/v1/checkout/sessions", "POST", SESSION_CREATE)
def create_checkout_session(call: Call) -> dict[str, Any]:
    params, store = call.params, call.store
    if params.get("mode") == "payment":
        return _create_payment_session(call)
    if params.get("mode") != "subscription":
        raise invalid(
            "The sandbox supports only `mode=subscription` and `mode=payment` Checkout Sessions.",
            param="mode",
        )
    for key in ("invoice_creation", "payment_intent_data"):
        if key in params:
            raise invalid(f"You can only use `{key}` in `payment` mode.", param=key)
    if params.get("customer") and params.get("customer_email"):
        raise invalid(
            "You may only specify one of these parameters: customer, customer_email.",
            param="customer_email",
        )
    if params.get("customer"):
        store.get("customer", params["customer"], param="customer")
    line_items = params.get("line_items") or []
    if len(line_items) != 1:
        raise invalid("Provide exactly one line item with a recurring price.", param="line_items")
    price = store.get("price", line_items[0].get("price"), param="line_items[0][price]")
    if not price["active"] or price["type"] != "recurring":
        raise invalid(
            f"The price `{price['id']}` is not an active recurring price.",
            param="line_items[0][price]",
        )
    quantity = as_int(line_items[0].get("quantity", 1), "line_items[0][quantity]")
    if not params.get("success_url"):
        raise invalid("Missing required param: success_url.", param="success_url")
    now = store.now()
    expires_at = as_int(params.get("expires_at", now + 24 * 3600), "expires_at")
    if not now + 1800 <= expires_at <= now + 24 * 3600:
        raise invalid(
            "The `expires_at` timestamp must be between 30 minutes and 24 hours from now.",
            param="expires_at",
        )
    subscription_data = params.get("subscription_data") or {}
    billing_mode = (subscription_data.get("billing_mode") or {}).get("type", "flexible")
    proration_discounts = ((subscription_data.get("billing_mode") or {}).get("flexible") or {}).get(
        "proration_discounts"
    )
    if proration_discounts not in (None, "included", "itemized"):
        raise invalid(
            "Invalid subscription_data[billing_mode][flexible][proration_discounts]: must be one "
            "of included, itemized",
            param="subscription_data[billing_mode][flexible][proration_discounts]",
        )
    if billing_mode not in ("classic", "flexible"):
        raise invalid(
            "Invalid subscription_data[billing_mode][type]: must be one of classic, flexible",
            param="subscription_data[billing_mode][type]",
        )
    consent_collection, custom_text = _consent_params(params)
    tax = tax_settings(store, params)
    tax_id_collection = tax.pop("tax_id_collection")
    trial_days, missing_payment_method = _trial(subscription_data)
    collection = params.get("payment_method_collection", "always")
    if collection not in ("always", "if_required"):
        raise invalid(
            "Invalid payment_method_collection: must be one of always, if_required",
            param="payment_method_collection",
        )
    subtotal = price["unit_amount"] * quantity
    session_id = new_id("cs_test_", 58)
    session = objects.checkout_session(
        now,
        session_id=session_id,
        url=f"{call.public_base}sandbox/checkout/{session_id}",
        allow_promotion_codes=(
            as_bool(params["allow_promotion_codes"], "allow_promotion_codes")
            if "allow_promotion_codes" in params
            else None
        ),
        # What is due today: nothing during a trial (the price comes at its end).
        amount_subtotal=0 if trial_days else subtotal,
        amount_total=0 if trial_days else subtotal,
        payment_method_collection=collection,
        cancel_url=params.get("cancel_url"),
        consent_collection=consent_collection,
        custom_text=custom_text,
        client_reference_id=params.get("client_reference_id"),
        currency=price["currency"],
        customer=params.get("customer"),
        customer_email=params.get("customer_email"),
        expires_at=expires_at,
        locale=params.get("locale"),
        metadata=merge_metadata(params.get("metadata")),
        success_url=params["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id),
        _line_items=[{"price": price["id"], "quantity": quantity}],
        _subscription_metadata=merge_metadata(subscription_data.get("metadata")),
        _billing_mode=billing_mode,
        _proration_discounts=proration_discounts,
        **tax,
        _trial_period_days=trial_days,
        _trial_missing_payment_method=missing_payment_method,
    )
    if tax_id_collection:
        # Shown only when asked for: Stripe's example session has no such field (SDK
        # `checkout/_session.py` TaxIdCollection).
        session["tax_id_collection"] = tax_id_collection
    # With automatic tax and a customer who has an address, the tax shows from the start.
    operations.update_session_totals(store, session, price["unit_amount"] * quantity)
    store.save(session)
    return session


def _create_payment_session(call: Call) -> dict[str, Any]:
    """A payment-mode session: one one-time price, paid once; with `invoice_creation` a paid
    invoice after payment (SDK params/checkout/_session_create_params.py: "Generate a
    post-purchase Invoice for one-time payments"; `payment_intent_data` "A subset of parameters
    to be passed to PaymentIntent creation for Checkout Sessions in `payment` mode").

    The sandbox supports the subset the site uses: an existing customer, card payments, an
    invoice (always asked for, so refunds reach what the payment bought through it), the terms
    checkbox. Subscription-only parameters are refused, as Stripe refuses them.
    """
    params, store = call.params, call.store
    for key in ("subscription_data", "payment_method_collection"):
        if key in params:
            raise invalid(f"You can not pass `{key}` in `payment` mode.", param=key)
    unsupported = [
        key
        for key in ("allow_promotion_codes", "automatic_tax", "tax_id_collection", "customer_email")
        if key in params
    ]
    if unsupported:
        raise invalid(
            f"The sandbox does not support `{unsupported[0]}` in `payment` mode.",
            param=unsupported[0],
        )
    if not params.get("customer"):
        raise invalid("The sandbox's payment mode needs `customer`.", param="customer")
    store.get("customer", params["customer"], param="customer")
    creation = params.get("invoice_creation") or {}
    if not as_bool(creation.get("enabled", False), "invoice_creation[enabled]"):
        raise invalid(
            "The sandbox supports payment mode with `invoice_creation[enabled]=true` only.",
            param="invoice_creation[enabled]",
        )
    line_items = params.get("line_items") or []
    if len(line_items) != 1:
        raise invalid("Provide exactly one line item with a one-time price.", param="line_items")
    price = store.get("price", line_items[0].get("price"), param="line_items[0][price]")
    if not price["active"]:
        raise invalid(f"The price `{price['id']}` is not active.", param="line_items[0][price]")
    if price["type"] != "one_time":
        raise invalid(
            "You specified `payment` mode but passed a recurring price. Either switch to "
            "`subscription` mode or use only one-time prices.",
            param="line_items[0][price]",
        )
    quantity = as_int(line_items[0].get("quantity", 1), "line_items[0][quantity]")
    if not params.get("success_url"):
        raise invalid("Missing required param: success_url.", param="success_url")
    now = store.now()
    consent_collection, custom_text = _consent_params(params)
    data = creation.get("invoice_data") or {}
    subtotal = price["unit_amount"] * quantity
    session_id = new_id("cs_test_", 58)
    session = objects.checkout_session(
        now,
        session_id=session_id,
        url=f"{call.public_base}sandbox/checkout/{session_id}",
        mode="payment",
        amount_subtotal=subtotal,
        amount_total=subtotal,
        payment_method_collection=None,
        cancel_url=params.get("cancel_url"),
        consent_collection=consent_collection,
        custom_text=custom_text,
        client_reference_id=params.get("client_reference_id"),
        currency=price["currency"],
        customer=params["customer"],
        locale=params.get("locale"),
        metadata=merge_metadata(params.get("metadata")),
        success_url=params["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id),
        invoice_creation={
            "enabled": True,
            "invoice_data": {
                "account_tax_ids": None,
                "custom_fields": None,
                "description": data.get("description"),
                "footer": data.get("footer"),
                "issuer": None,
                "metadata": merge_metadata(data.get("metadata")),
                "rendering_options": None,
            },
        },
        _line_items=[{"price": price["id"], "quantity": quantity}],
        _payment_intent_metadata=merge_metadata(
            (params.get("payment_intent_data") or {}).get("metadata")
        ),
    )
    store.save(session)
    return session


# Stripe's limit on each custom text (SDK params/checkout/_session_create_params.py).
CUSTOM_TEXT_MAX = 1200


def _consent_params(params: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """`consent_collection` and `custom_text` as the Session carries them (SDK
    checkout/_session.py: ConsentCollection, CustomText); the hosted page shows the required
    terms checkbox, in the custom words when given."""
    consent_collection = None
    if "consent_collection" in params:
        terms = (params["consent_collection"] or {}).get("terms_of_service", "none")
        if terms not in ("none", "required"):
            raise invalid(
                "Invalid consent_collection[terms_of_service]: must be one of none, required",
                param="consent_collection[terms_of_service]",
            )
        consent_collection = {
            "payment_method_reuse_agreement": None,
            "promotions": None,
            "terms_of_service": terms,
        }
    custom_text: dict[str, Any] = {
        "after_submit": None,
        "shipping_address": None,
        "submit": None,
        "terms_of_service_acceptance": None,
    }
    acceptance = (params.get("custom_text") or {}).get("terms_of_service_acceptance")
    if acceptance is not None:
        message = acceptance.get("message")
        param = "custom_text[terms_of_service_acceptance][message]"
        if not message:
            raise invalid(f"Missing required param: {param}.", param=param)
        if len(message) > CUSTOM_TEXT_MAX:
            raise invalid(
                f"Invalid {param}: must be at most {CUSTOM_TEXT_MAX} characters", param=param
            )
        custom_text["terms_of_service_acceptance"] = {"message": message}
    return consent_collection, custom_text


def tax_settings(store: Store, params: dict[str, Any]) -> dict[str, Any]:
    """The session's tax fields, refusing what Stripe refuses.

    - `customer_update` "can only be provided when `customer` is provided" (SDK
      params/checkout/_session_create_params.py).
    - Automatic tax for an existing customer needs an address to tax: the customer's own, or
      the one typed at Checkout saved with `customer_update[address]=auto`
      (docs.stripe.com/tax/checkout, "existing customers"). Assumption: Stripe's exact wording.
    - Tax id collection for an existing customer saves the business name on it, so it needs
      `customer_update[name]=auto` (docs.stripe.com/tax/checkout/tax-ids, "Existing
      customers"). Assumption: Stripe's exact wording.
    """
    automatic = params.get("automatic_tax") or {}
    tax_ids = params.get("tax_id_collection") or {}
    update = params.get("customer_update") or {}
    enabled = as_bool(automatic.get("enabled", False), "automatic_tax[enabled]")
    collect_ids = as_bool(tax_ids.get("enabled", False), "tax_id_collection[enabled]")
    if update and not params.get("customer"):
        raise invalid(
            "`customer_update` can only be used with `customer`.", param="customer_update"
        )
    for key, value in update.items():
        if value not in ("auto", "never"):
            raise invalid(
                f"Invalid customer_update[{key}]: must be one of auto or never",
                param=f"customer_update[{key}]",
            )
    collection = params.get("billing_address_collection")
    if collection not in (None, "auto", "required"):
        raise invalid(
            "Invalid billing_address_collection: must be one of auto or required",
            param="billing_address_collection",
        )
    customer = store.find(params["customer"]) if params.get("customer") else None
    if enabled and customer is not None:
        has_address = bool((customer.get("address") or {}).get("country"))
        if not has_address and update.get("address") != "auto":
            raise invalid(
                "Automatic tax calculation in Checkout requires a valid address on the "
                "Customer. Add a valid address to the Customer or set `customer_update[address]` "
                "to 'auto' to save the address entered in Checkout to the Customer.",
                param="automatic_tax[enabled]",
            )
    if collect_ids and customer is not None and update.get("name") != "auto":
        raise invalid(
            "To collect tax ids for an existing customer, set `customer_update[name]` to "
            "'auto' so that the business name entered in Checkout is saved to the Customer.",
            param="tax_id_collection[enabled]",
        )
    return {
        "automatic_tax": {
            "enabled": enabled,
            "liability": {"account": None, "type": "self"} if enabled else None,
            "provider": "stripe" if enabled else None,
            "status": "requires_location_inputs" if enabled else None,
        },
        "billing_address_collection": collection,
        "tax_id_collection": (
            {"enabled": True, "required": tax_ids.get("required") or "never"}
            if collect_ids
            else None
        ),
        "_customer_update": dict(update),
    }


def _trial(subscription_data: dict[str, Any]) -> tuple[int | None, str]:
    """`subscription_data.trial_period_days` ("Has to be at least 1", SDK params; at most 730,
    docs.stripe.com/billing/subscriptions/trials) and what a trial ending with no card does
    (Stripe's default: `create_invoice`)."""
    days = None
    if "trial_period_days" in subscription_data:
        param = "subscription_data[trial_period_days]"
        days = as_int(subscription_data["trial_period_days"], param)
        if not 1 <= days <= 730:
            raise invalid(f"{param} must be between 1 and 730.", param=param)
    end_behavior = (subscription_data.get("trial_settings") or {}).get("end_behavior") or {}
    missing = end_behavior.get("missing_payment_method", "create_invoice")
    if missing not in trials.MISSING_PAYMENT_METHOD:
        raise invalid(
            "Invalid subscription_data[trial_settings][end_behavior][missing_payment_method]: "
            "must be one of cancel, create_invoice, pause",
            param="subscription_data[trial_settings][end_behavior][missing_payment_method]",
        )
    return days, missing


@route(
    "/v1/checkout/sessions",
    "GET",
    {**LIST, "customer": SCALAR, "subscription": SCALAR, "status": SCALAR},
)
def list_checkout_sessions(call: Call) -> dict[str, Any]:
    operations.expire_overdue_sessions(call.store)
    items = call.store.query("checkout.session", customer=call.params.get("customer"))
    for key in ("subscription", "status"):
        if key in call.params:
            items = [item for item in items if item[key] == call.params[key]]
    return paginate(call, items)


@route("/v1/checkout/sessions/<id>", "GET", {})
def retrieve_checkout_session(call: Call, id: str) -> dict[str, Any]:
    operations.expire_overdue_sessions(call.store)
    return call.store.get("checkout.session", id, param="session")


@route("/v1/checkout/sessions/<id>/expire", "POST", {})
def expire_checkout_session(call: Call, id: str) -> dict[str, Any]:
    call.store.get("checkout.session", id, param="session")
    return operations.expire_checkout_session(call.store, id)


@route("/v1/checkout/sessions/<id>/line_items", "GET", LIST)
def list_session_line_items(call: Call, id: str) -> dict[str, Any]:
    session = call.store.get("checkout.session", id, param="session")
    return paginate(call, session_line_items(call.store, session)["data"])


@includable("checkout.session", "line_items")
def session_line_items(store: Store, session: dict[str, Any]) -> dict[str, Any]:
    """A session's line items as Stripe's `item` objects (only shown when asked for)."""
    items = []
    for index, line in enumerate(session["_line_items"]):
        price = store.get("price", line["price"])
        amount = price["unit_amount"] * line["quantity"]
        product = store.find(price["product"]) or {}
        items.append(
            {
                "id": f"li_{session['id'][8:30]}{index}",
                "object": "item",
                "adjustable_quantity": None,
                "amount_discount": 0,
                "amount_subtotal": amount,
                "amount_tax": 0,
                "amount_total": amount,
                "currency": price["currency"],
                "description": product.get("name"),
                "metadata": {},
                "price": price,
                "quantity": line["quantity"],
            }
        )
    return objects.list_object(items, f"/v1/checkout/sessions/{session['id']}/line_items")
