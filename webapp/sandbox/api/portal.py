"""Customer-portal configurations and sessions.

Parameters and required fields follow the SDK's `params/billing_portal/_configuration_create_
params.py`, `_configuration_update_params.py` and `_session_create_params.py`.
"""

from __future__ import annotations

import copy
from typing import Any

from webapp.sandbox import objects
from webapp.sandbox.api.routing import LIST, Call, merge_metadata, paginate, route
from webapp.sandbox.objects.sessions import CANCELLATION_REASONS
from webapp.sandbox.store import Store
from webapp.sandbox.wire import MAP, SCALAR, StripeAPIError, as_bool, as_int, invalid, refused

ALLOWED_CUSTOMER_UPDATES = ("address", "email", "name", "phone", "shipping", "tax_id")
ALLOWED_SUBSCRIPTION_UPDATES = ("price", "promotion_code", "quantity")
CONDITIONS = ("decreasing_item_amount", "shortening_interval")
MAX_PRODUCTS = 10

FEATURES = {
    "customer_update": {"allowed_updates": [SCALAR], "enabled": SCALAR},
    "invoice_history": {"enabled": SCALAR},
    "payment_method_update": {"enabled": SCALAR, "payment_method_configuration": SCALAR},
    "subscription_cancel": {
        "cancellation_reason": {
            "enabled": SCALAR,
            "options": [SCALAR],
            "feedback_options": [SCALAR],
        },
        "enabled": SCALAR,
        "mode": SCALAR,
        "proration_behavior": SCALAR,
    },
    "subscription_pause": {
        "enabled": SCALAR,
        "duration": {
            "type": SCALAR,
            "interval_options": [{"interval": SCALAR, "interval_count": SCALAR}],
        },
    },
    "subscription_update": {
        "billing_cycle_anchor": SCALAR,
        "default_allowed_updates": [SCALAR],
        "enabled": SCALAR,
        "products": [
            {
                "product": SCALAR,
                "prices": [SCALAR],
                "adjustable_quantity": {
                    "enabled": SCALAR,
                    "maximum": SCALAR,
                    "minimum": SCALAR,
                },
            }
        ],
        "proration_behavior": SCALAR,
        "schedule_at_period_end": {"conditions": [{"type": SCALAR}]},
        "trial_update_behavior": SCALAR,
    },
}
CONFIGURATION = {
    "business_profile": {
        "headline": SCALAR,
        "privacy_policy_url": SCALAR,
        "terms_of_service_url": SCALAR,
    },
    "default_return_url": SCALAR,
    "features": FEATURES,
    "login_page": {"enabled": SCALAR},
    "metadata": MAP,
    "name": SCALAR,
}


def _missing(param: str) -> StripeAPIError:
    return invalid(f"Missing required param: {param}.", param=param, code="parameter_missing")


def _enum(value: Any, choices: tuple[str, ...], param: str) -> str:
    if value not in choices:
        raise invalid(f"Invalid {param}: must be one of {', '.join(choices)}", param=param)
    return value


def _enums(values: Any, choices: tuple[str, ...], param: str) -> list[str]:
    if values == "":
        return []
    return [_enum(value, choices, f"{param}[{i}]") for i, value in enumerate(values or [])]


class _Feature:
    """One `features[name]` hash being applied to a configuration."""

    def __init__(self, features: dict[str, Any], name: str, params: dict[str, Any]) -> None:
        self.target, self.params, self.where = features[name], params, f"features[{name}]"

    def flag(self, key: str, *, required: bool) -> None:
        if key not in self.params:
            if required:
                raise _missing(f"{self.where}[{key}]")
            return
        self.target[key] = as_bool(self.params[key], f"{self.where}[{key}]")


def apply_configuration(
    store: Store, config: dict[str, Any], params: dict[str, Any], *, create: bool
) -> None:
    """Apply create/update parameters to `config`, refusing what Stripe refuses."""
    if create and "features" not in params:
        raise _missing("features")
    if "business_profile" in params:
        profile = params["business_profile"]
        for key in ("headline", "privacy_policy_url", "terms_of_service_url"):
            if key in profile:
                config["business_profile"][key] = profile[key] or None
    if "default_return_url" in params:
        config["default_return_url"] = params["default_return_url"] or None
    if "name" in params:
        config["name"] = params["name"] or None
    if "metadata" in params:
        config["metadata"] = merge_metadata(params["metadata"], config["metadata"])
    if "login_page" in params:
        if "enabled" not in params["login_page"]:
            raise _missing("login_page[enabled]")
        # The sandbox serves no login page: the link stays empty (a sandbox limitation).
        config["login_page"]["enabled"] = as_bool(
            params["login_page"]["enabled"], "login_page[enabled]"
        )
    features = config["features"]
    for name, feature_params in (params.get("features") or {}).items():
        feature = _Feature(features, name, feature_params)
        # `enabled` is required whenever a feature is sent on create; on update only for
        # invoice_history and payment_method_update (and never for subscription_pause).
        required = name != "subscription_pause" and (
            create or name in ("invoice_history", "payment_method_update")
        )
        feature.flag("enabled", required=required)
        APPLY[name](store, feature, create)


def _customer_update(store: Store, feature: _Feature, create: bool) -> None:
    if "allowed_updates" in feature.params:
        feature.target["allowed_updates"] = _enums(
            feature.params["allowed_updates"],
            ALLOWED_CUSTOMER_UPDATES,
            f"{feature.where}[allowed_updates]",
        )


def _nothing_more(store: Store, feature: _Feature, create: bool) -> None:
    if "payment_method_configuration" in feature.params:
        feature.target["payment_method_configuration"] = (
            feature.params["payment_method_configuration"] or None
        )


def _subscription_cancel(store: Store, feature: _Feature, create: bool) -> None:
    params, target, where = feature.params, feature.target, feature.where
    if "mode" in params:
        target["mode"] = _enum(params["mode"], ("at_period_end", "immediately"), f"{where}[mode]")
    if "proration_behavior" in params:
        # "Possible values are none and create_prorations, which is only compatible with
        # mode=immediately. Passing always_invoice will result in an error."
        target["proration_behavior"] = _enum(
            params["proration_behavior"],
            ("create_prorations", "none"),
            f"{where}[proration_behavior]",
        )
    if target["proration_behavior"] == "create_prorations" and target["mode"] != "immediately":
        raise invalid(
            "`proration_behavior=create_prorations` is only compatible with `mode=immediately`.",
            param=f"{where}[proration_behavior]",
        )
    if "cancellation_reason" in params:
        reason, where_reason = params["cancellation_reason"], f"{where}[cancellation_reason]"
        if "enabled" not in reason:
            raise _missing(f"{where_reason}[enabled]")
        if create and "options" not in reason:
            raise _missing(f"{where_reason}[options]")
        target["cancellation_reason"]["enabled"] = as_bool(
            reason["enabled"], f"{where_reason}[enabled]"
        )
        if "options" in reason:
            target["cancellation_reason"]["options"] = _enums(
                reason["options"], CANCELLATION_REASONS, f"{where_reason}[options]"
            )


def _subscription_pause(store: Store, feature: _Feature, create: bool) -> None:
    # Stored as sent; the sandbox's portal page offers no pausing (a sandbox limitation).
    duration = feature.params.get("duration")
    if duration:
        where = f"{feature.where}[duration]"
        if "type" not in duration:
            raise _missing(f"{where}[type]")
        options = []
        for index, option in enumerate(duration.get("interval_options") or []):
            options.append(
                {
                    "interval": _enum(
                        option.get("interval"),
                        ("day", "month", "week", "year"),
                        f"{where}[interval_options][{index}][interval]",
                    ),
                    "interval_count": as_int(
                        option.get("interval_count", 1),
                        f"{where}[interval_options][{index}][interval_count]",
                    ),
                }
            )
        feature.target["duration"] = {
            "interval_options": options,
            "type": _enum(duration["type"], ("indefinite", "interval_options"), f"{where}[type]"),
        }


def _subscription_update(store: Store, feature: _Feature, create: bool) -> None:
    params, target, where = feature.params, feature.target, feature.where
    if "default_allowed_updates" in params:
        target["default_allowed_updates"] = _enums(
            params["default_allowed_updates"],
            ALLOWED_SUBSCRIPTION_UPDATES,
            f"{where}[default_allowed_updates]",
        )
    if "proration_behavior" in params:
        target["proration_behavior"] = _enum(
            params["proration_behavior"],
            ("always_invoice", "create_prorations", "none"),
            f"{where}[proration_behavior]",
        )
    if "billing_cycle_anchor" in params:
        target["billing_cycle_anchor"] = _enum(
            params["billing_cycle_anchor"], ("now", "unchanged"), f"{where}[billing_cycle_anchor]"
        )
    if "trial_update_behavior" in params:
        target["trial_update_behavior"] = _enum(
            params["trial_update_behavior"],
            ("continue_trial", "end_trial"),
            f"{where}[trial_update_behavior]",
        )
    if "schedule_at_period_end" in params:
        conditions = params["schedule_at_period_end"].get("conditions", [])
        if conditions == "":
            conditions = []
        checked = []
        for index, condition in enumerate(conditions):
            if "type" not in condition:
                raise _missing(f"{where}[schedule_at_period_end][conditions][{index}][type]")
            checked.append(
                {
                    "type": _enum(
                        condition["type"],
                        CONDITIONS,
                        f"{where}[schedule_at_period_end][conditions][{index}][type]",
                    )
                }
            )
        target["schedule_at_period_end"]["conditions"] = checked
    if "products" in params:
        target["products"] = _products(store, params["products"], f"{where}[products]")


def _products(store: Store, products: Any, where: str) -> list[dict[str, Any]]:
    products = [] if products == "" else products
    if len(products) > MAX_PRODUCTS:
        raise invalid(f"You can pass at most {MAX_PRODUCTS} products.", param=where)
    shown = []
    for index, entry in enumerate(products):
        here = f"{where}[{index}]"
        for key in ("product", "prices"):
            if key not in entry:
                raise _missing(f"{here}[{key}]")
        product = store.get("product", entry["product"], param=f"{here}[product]")
        for position, price_id in enumerate(entry["prices"]):
            price = store.get("price", price_id, param=f"{here}[prices][{position}]")
            if price["product"] != product["id"] or price["type"] != "recurring":
                # Assumption: Stripe's wording; the portal offers recurring prices of the
                # product listed with them.
                raise invalid(
                    f"The price {price_id} is not a recurring price of the product "
                    f"{product['id']}.",
                    param=f"{here}[prices][{position}]",
                )
        quantity = entry.get("adjustable_quantity") or {}
        if quantity and "enabled" not in quantity:
            raise _missing(f"{here}[adjustable_quantity][enabled]")
        shown.append(
            {
                "adjustable_quantity": {
                    "enabled": as_bool(
                        quantity.get("enabled", False), f"{here}[adjustable_quantity][enabled]"
                    ),
                    "maximum": (
                        as_int(quantity["maximum"], f"{here}[adjustable_quantity][maximum]")
                        if "maximum" in quantity
                        else None
                    ),
                    "minimum": as_int(
                        quantity.get("minimum", 1), f"{here}[adjustable_quantity][minimum]"
                    ),
                },
                "prices": list(entry["prices"]),
                "product": product["id"],
            }
        )
    return shown


APPLY = {
    "customer_update": _customer_update,
    "invoice_history": _nothing_more,
    "payment_method_update": _nothing_more,
    "subscription_cancel": _subscription_cancel,
    "subscription_pause": _subscription_pause,
    "subscription_update": _subscription_update,
}


@route("/v1/billing_portal/configurations", "POST", CONFIGURATION)
def create_configuration(call: Call) -> dict[str, Any]:
    store = call.store
    config = objects.portal_configuration(store.now())
    apply_configuration(store, config, call.params, create=True)
    # Choice (undocumented): the first configuration becomes the default, as real Stripe
    # was seen doing for the first test-mode configuration (research plan_changes.md §1,
    # [3P-T1]); `is_default` itself cannot be set (it is no parameter).
    config["is_default"] = not store.query("billing_portal.configuration")
    store.save(config)
    store.emit("billing_portal.configuration.created", config)
    return config


@route(
    "/v1/billing_portal/configurations/<id>",
    "POST",
    {**CONFIGURATION, "active": SCALAR},
)
def update_configuration(call: Call, id: str) -> dict[str, Any]:
    store = call.store
    config = store.get("billing_portal.configuration", id, param="configuration", for_update=True)
    before = copy.deepcopy(config)
    apply_configuration(store, config, call.params, create=False)
    if "active" in call.params:
        active = as_bool(call.params["active"], "active")
        if not active and config["is_default"]:
            # Observed on Stripe ([3P-T1]): the default configuration cannot be turned off.
            raise refused("You cannot deactivate the default configuration.", param="active")
        config["active"] = active
    if config != before:
        config["updated"] = store.now()
        store.save(config)
        store.emit("billing_portal.configuration.updated", config)
    return config


@route(
    "/v1/billing_portal/configurations",
    "GET",
    {**LIST, "active": SCALAR, "is_default": SCALAR},
)
def list_configurations(call: Call) -> dict[str, Any]:
    items = call.store.query("billing_portal.configuration")
    for key in ("active", "is_default"):
        if key in call.params:
            wanted = as_bool(call.params[key], key)
            items = [item for item in items if item[key] == wanted]
    return paginate(call, items)


@route("/v1/billing_portal/configurations/<id>", "GET", {})
def retrieve_configuration(call: Call, id: str) -> dict[str, Any]:
    return call.store.get("billing_portal.configuration", id, param="configuration")


# --- sessions ---------------------------------------------------------------------------------

NO_DEFAULT_CONFIGURATION = (
    # Stripe's answer when the account never saved its portal settings (seen in integrations'
    # error reports); the sandbox has no Dashboard, so a configuration made through the API
    # takes the Dashboard's place.
    "You can't create a portal session in test mode until you save your customer portal "
    "settings in test mode at https://dashboard.stripe.com/test/settings/billing/portal."
)


@route(
    "/v1/billing_portal/sessions",
    "POST",
    {"customer": SCALAR, "return_url": SCALAR, "configuration": SCALAR, "locale": SCALAR},
)
def create_portal_session(call: Call) -> dict[str, Any]:
    params, store = call.params, call.store
    if not params.get("customer"):
        raise _missing("customer")
    store.get("customer", params["customer"], param="customer")
    if params.get("configuration"):
        config = store.get(
            "billing_portal.configuration", params["configuration"], param="configuration"
        )
        if not config["active"]:
            # "An inactive configuration cannot be used to create sessions" (SDK
            # `_configuration.py`, active); the wording is an assumption.
            raise refused(
                f"The configuration {config['id']} is inactive and cannot be used to create "
                "portal sessions.",
                param="configuration",
            )
    else:
        defaults = [c for c in store.query("billing_portal.configuration") if c["is_default"]]
        if not defaults:
            raise refused(NO_DEFAULT_CONFIGURATION)
        config = defaults[0]
    return_url = params.get("return_url") or config["default_return_url"]
    if not return_url:
        # "required if a default return URL isn't set" (docs.stripe.com/customer-management/
        # integrate-customer-portal).
        raise _missing("return_url")
    session = objects.portal_session(
        store.now(),
        customer_id=params["customer"],
        configuration_id=config["id"],
        return_url=return_url,
        url_base=call.public_base,
    )
    session["locale"] = params.get("locale")
    store.save(session)
    return session
