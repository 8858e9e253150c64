"""Checkout options: what Stripe Checkout offers the buyer, on or off per environment, as data.

`catalog.toml`'s `[checkout]` table names each option once. An option is either one value for
every environment or a table with one value per environment (`development`, `test`,
`production`, all three required so that turning an option on is a decision for each). An
environment variable (`CHECKOUT_<OPTION>`, e.g. `CHECKOUT_ALLOW_PROMOTION_CODES=false`) overrides
the file for one deployment. The resolved options are what `billing.checkout` sends with every
Checkout Session (see `CheckoutOptions.session_params`).

A new option is one more field of `CheckoutOptions` (and so one more entry of `OPTIONS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

ENVIRONMENTS = ("development", "test", "production")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


class CheckoutOptionsError(ValueError):
    """The `[checkout]` table (or an override) names an unknown option or a bad value."""


@dataclass(frozen=True)
class CheckoutOptions:
    """The checkout options in force in one environment."""

    # Checkout shows an "Add promotion code" field; the code's coupon discounts the
    # subscription (Stripe: `allow_promotion_codes`). Never changes the credits a plan grants.
    allow_promotion_codes: bool = False
    # Checkout shows a required "I agree to the Terms of Service" checkbox linking to our terms
    # page (Stripe: `consent_collection.terms_of_service = "required"`, with our words in
    # `custom_text.terms_of_service_acceptance`). Real Stripe refuses the session unless the
    # Dashboard's Public details name a terms-of-service URL.
    consent_collection: bool = False
    # Tax (README, "Tax"). `automatic_tax`: Stripe Tax adds the tax of the buyer's location on
    # top of the price (our prices are tax-exclusive), and the subscription's invoices keep
    # doing so. `tax_id_collection`: a business buyer may give a VAT (or other tax) id, saved on
    # the customer and printed on invoices. `billing_address_collection`: Checkout always asks
    # for a full billing address ("required"; Stripe's default "auto" asks only when needed),
    # also sent whenever `automatic_tax` is on. Amounts charged change; credits never do.
    automatic_tax: bool = False
    tax_id_collection: bool = False
    billing_address_collection: bool = False
    # Each plan's free trial (`trial_period_days` in the catalog), for whoever never had one.
    free_trials: bool = False
    # Card-less trials: Checkout collects no card when nothing is due today
    # (`payment_method_collection=if_required`); without one by the trial's end the
    # subscription is cancelled (TRIAL_END_WITHOUT_CARD).
    trials_without_card: bool = False

    def session_params(self, *, terms_url: str | None = None) -> dict[str, Any]:
        """What these options add to `checkout.sessions.create` (only what is on: Stripe's
        defaults are the "off" of each). `terms_url` is our terms page, which the consent
        checkbox links to."""
        params: dict[str, Any] = {}
        if self.allow_promotion_codes:
            params["allow_promotion_codes"] = True
        if self.consent_collection:
            if not terms_url:
                raise CheckoutOptionsError("consent_collection needs the terms page's URL")
            params.update(terms_of_service_consent(terms_url))
        params.update(self.tax_params())
        return params

    def tax_params(self) -> dict[str, Any]:
        """The tax options' parameters. Our sessions always pass an existing `customer`, and
        Stripe then needs `customer_update` to save what the buyer types: the address for
        automatic tax ("set customer_update[address] to auto", docs.stripe.com/tax/checkout,
        existing customers) and the business name with a tax id ("customer_update.name to
        auto", docs.stripe.com/tax/checkout/tax-ids); the SDK allows `customer_update` only
        together with `customer` (params/checkout/_session_create_params.py)."""
        params: dict[str, Any] = {}
        if self.automatic_tax:
            params["automatic_tax"] = {"enabled": True}
        if self.tax_id_collection:
            params["tax_id_collection"] = {"enabled": True}
        if self.billing_address_collection or self.automatic_tax:
            params["billing_address_collection"] = "required"
        if params:
            params["customer_update"] = {"address": "auto", "name": "auto"}
        return params

    def trial_params(self, trial_days: int) -> dict[str, Any]:
        """What a `trial_days`-day trial adds to `checkout.sessions.create` (nothing when trials
        are off or there is no trial for this buyer). `subscription_data` is merged with the
        gateway's own (metadata) there."""
        if not self.free_trials or trial_days <= 0:
            return {}
        subscription_data: dict[str, Any] = {"trial_period_days": trial_days}
        params: dict[str, Any] = {"subscription_data": subscription_data}
        if self.trials_without_card:
            params["payment_method_collection"] = "if_required"
            subscription_data["trial_settings"] = {
                "end_behavior": {"missing_payment_method": TRIAL_END_WITHOUT_CARD}
            }
        return params

    def fingerprint(self) -> str:
        """A short, stable summary (part of the Checkout idempotency key: other options make
        other parameters, which Stripe refuses under a key it has seen)."""
        return "".join("1" if getattr(self, f.name) else "0" for f in fields(self))


def terms_of_service_consent(terms_url: str) -> dict[str, Any]:
    """Require the buyer to tick "I agree to the Terms of Service", in our words with a link
    to our page (Stripe renders Markdown links in custom text:
    docs.stripe.com/payments/checkout/customization/policies)."""
    return {
        "consent_collection": {"terms_of_service": "required"},
        "custom_text": {
            "terms_of_service_acceptance": {
                "message": f"I agree to the LLMGen [Terms of Service]({terms_url})."
            }
        },
    }


# A card-less trial that ends with no card: `cancel`, not `pause` (Stripe's choices for
# `trial_settings.end_behavior.missing_payment_method`, docs.stripe.com/payments/checkout/
# free-trials). A cancelled trial ends cleanly: the member is on no plan and may subscribe again
# (without a second trial); a paused one would stay a live subscription that blocks checkout and
# needs a resume flow neither the portal nor our pages offer.
TRIAL_END_WITHOUT_CARD = "cancel"


# Each option's type, for parsing the file and the environment.
OPTIONS: dict[str, type] = {f.name: bool for f in fields(CheckoutOptions)}


def _as_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    raise CheckoutOptionsError(f"{where} must be true or false, got {value!r}")


def parse_checkout_settings(raw: Any) -> dict[str, CheckoutOptions]:
    """`[checkout]` as options per environment; a missing table means every option off."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise CheckoutOptionsError("[checkout] must be a table")
    unknown = sorted(set(raw) - set(OPTIONS))
    if unknown:
        raise CheckoutOptionsError(
            f"[checkout]: unknown option {unknown[0]!r}; known: {', '.join(OPTIONS)}"
        )
    per_env: dict[str, dict[str, Any]] = {env: {} for env in ENVIRONMENTS}
    for name, value in raw.items():
        where = f"[checkout] {name}"
        if isinstance(value, dict):
            missing = [env for env in ENVIRONMENTS if env not in value]
            extra = sorted(set(value) - set(ENVIRONMENTS))
            if extra:
                raise CheckoutOptionsError(f"{where}: unknown environment {extra[0]!r}")
            if missing:
                raise CheckoutOptionsError(f"{where}: missing a value for {missing[0]!r}")
            for env in ENVIRONMENTS:
                per_env[env][name] = _as_bool(value[env], f"{where}.{env}")
        else:
            for env in ENVIRONMENTS:
                per_env[env][name] = _as_bool(value, where)
    return {env: CheckoutOptions(**values) for env, values in per_env.items()}


def resolve(
    settings: Mapping[str, CheckoutOptions], app_env: str, environ: Mapping[str, str]
) -> CheckoutOptions:
    """The options for `app_env`, with `CHECKOUT_<OPTION>` variables overriding the file."""
    options = settings[app_env]
    overrides: dict[str, Any] = {}
    for name in OPTIONS:
        variable = f"CHECKOUT_{name.upper()}"
        text = (environ.get(variable) or "").strip().lower()
        if not text:
            continue
        if text in TRUE_WORDS:
            overrides[name] = True
        elif text in FALSE_WORDS:
            overrides[name] = False
        else:
            raise CheckoutOptionsError(f"{variable} must be true or false, got {text!r}")
    if not overrides:
        return options
    return CheckoutOptions(
        **{**{f.name: getattr(options, f.name) for f in fields(options)}, **overrides}
    )
