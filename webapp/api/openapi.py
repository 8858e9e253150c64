"""The OpenAPI 3.1 document of the API, served at /api/v1/openapi.json.

Hand-written next to the views it describes, so a change to one shows up beside the other in
review; the test suite validates real responses against it and fuzzes the API from it.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from webapp.catalog import CYCLES, PACK_ID_PATTERN, PLAN_IDS, load_catalog
from webapp.models.billing import CREDIT_TYPES

# Every `error.code` the API can answer with; clients may rely on these staying the same.
ERROR_CODES = {
    "bad_request": "The request could not be understood.",
    "validation_error": "A field is missing, of the wrong type, too long, or unknown.",
    "invalid_json": "The body is not valid JSON.",
    "invalid_characters": (
        "The path, query, a header or a body string holds a NUL, a control character or an "
        "unpaired surrogate."
    ),
    "invalid_plan": "planId is not one of the plans we sell.",
    "invalid_package": "packageId is not one of the credit packs we sell.",
    "invalid_billing_cycle": "billingCycle is not `monthly` or `yearly`.",
    "invalid_redirect_url": "successUrl, cancelUrl or returnUrl is not an allowed absolute URL.",
    "subscription_exists": "The user already has a subscription; change plans in the portal.",
    "no_billing_account": "The user has never bought anything, so there is no portal yet.",
    "checkout_in_progress": "Another checkout of the same user is being started; retry shortly.",
    "unauthorized": "The credential is missing, invalid, expired, revoked or of the wrong kind.",
    "invalid_credentials": "`/auth/login`: the email or the password is wrong.",
    "account_deactivated": "`/auth/login`: the credentials are right, the account deactivated.",
    "invalid_refresh_token": "The refresh token is unknown, expired or of a revoked log-in.",
    "refresh_token_reused": (
        "The refresh token was already exchanged: every token of its log-in is now revoked."
    ),
    "forbidden": "The request is not allowed.",
    "not_found": "No such endpoint.",
    "method_not_allowed": "The endpoint exists but not with this method (see `Allow`).",
    "payload_too_large": "The body is larger than 1 MiB.",
    "unsupported_media_type": "A body was sent without `Content-Type: application/json`.",
    "rate_limited": "Too many requests; retry after `Retry-After` seconds.",
    "internal_error": "Something went wrong on our side.",
    "payment_provider_unavailable": "Stripe could not be reached or refused; try again.",
    "catalog_mismatch": "Stripe's price differs from our catalog; the plan is briefly unavailable.",
    "service_unavailable": "The service is briefly unavailable.",
    "insufficient_credits": "The balance does not cover the usage (402, with balance and needed).",
    "idempotency_key_reused": "The idempotencyKey was used before for a different request.",
    "user_not_found": "No user has this userId.",
    "account_inactive": "The account is deleted or deactivated: it cannot spend (or, deleted, "
    "get credits back).",
    "usage_not_found": "No usage was recorded with this idempotencyKey.",
    "usage_not_configured": "No service credential is configured: usage cannot be recorded.",
    # API keys (webapp/api/key_management.py, webapp/api/credentials.py)
    "api_key_expired": "The API key is past its `expiresAt`.",
    "insufficient_scope": "The API key is read-only (`read`); only GET is allowed with it.",
    "api_key_not_allowed": "API keys cannot manage API keys; use an access token.",
    "api_key_not_found": "The caller has no (unrevoked) API key with this id.",
    "invalid_scopes": 'scopes is not `["read"]` or `["full"]`.',
    "invalid_expiry": "expiresAt is not an ISO 8601 time with a zone, in the next 365 days.",
    "too_many_api_keys": "The caller already has 20 unrevoked API keys; revoke one first.",
    "email_not_verified": "The caller has not verified their email address yet.",
}

# What the billing history says became of an invoice (webapp/billing/history.py).
INVOICE_STATUSES = ("open", "paid", "partially_refunded", "refunded", "uncollectible", "void")

JSON = "application/json"
# Request strings may not hold NUL, other C0 controls but tab/CR/LF, or unpaired surrogates
# (answered 400 `invalid_characters` before any endpoint reads them).
REFUSED_IN_TEXT = "\x00-\x08\x0b\x0c\x0e-\x1f\\ud800-\\udfff"  # a regex class body
TEXT_PATTERN = f"^[^{REFUSED_IN_TEXT}]*$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _body(schema_name: str, *, required: bool) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": _ref(schema_name)}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _response(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


def _redirect_url(description: str) -> dict[str, Any]:
    return {"type": "string", "format": "uri", "maxLength": 2048, "description": description}


SCHEMA_ERROR_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["code", "message"],
    "additionalProperties": False,
    "properties": {
        "code": {
            "type": "string",
            "enum": list(ERROR_CODES),
            "description": "Stable code: "
            + "; ".join(f"`{code}`: {meaning}" for code, meaning in ERROR_CODES.items()),
        },
        "message": {"type": "string", "description": "For people; may change."},
    },
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {"error": SCHEMA_ERROR_BODY},
    },
    "TokenRequest": {
        "type": "object",
        "required": ["email", "password"],
        "additionalProperties": False,
        "properties": {
            "email": {"type": "string", "maxLength": 254, "pattern": TEXT_PATTERN},
            "password": {"type": "string", "maxLength": 128, "pattern": TEXT_PATTERN},
        },
    },
    "TokenResponse": {
        "type": "object",
        "required": ["accessToken", "tokenType", "expiresIn"],
        "additionalProperties": False,
        "properties": {
            "accessToken": {"type": "string", "description": "A JWT (HS256)."},
            "tokenType": {"const": "Bearer"},
            "expiresIn": {"type": "integer", "minimum": 1, "description": "Seconds."},
        },
    },
    "TokenPair": {
        "type": "object",
        "required": ["accessToken", "refreshToken", "expiresIn", "tokenType"],
        "additionalProperties": False,
        "properties": {
            "accessToken": {"type": "string", "description": "A JWT (HS256), 15 minutes."},
            "refreshToken": {
                "type": "string",
                "description": "Opaque; single use (each refresh returns the next one); "
                "valid for 7 days.",
            },
            "expiresIn": {"type": "integer", "minimum": 1, "description": "Seconds."},
            "tokenType": {"const": "Bearer"},
        },
    },
    "LoginUser": {
        "type": "object",
        "required": ["id", "email", "name", "emailVerified", "updatedAt"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string"},
            "email": {"type": "string"},
            "name": {"type": ["string", "null"], "description": "Always null: we ask no name."},
            "emailVerified": {"type": "boolean"},
            "updatedAt": {"type": "string", "format": "date-time"},
        },
    },
    "LoginResponse": {
        "type": "object",
        "required": ["success", "message", "user", "tokens"],
        "additionalProperties": False,
        "properties": {
            "success": {"const": True},
            "message": {"type": "string"},
            "user": _ref("LoginUser"),
            "tokens": _ref("TokenPair"),
        },
    },
    "RefreshRequest": {
        "type": "object",
        "required": ["refreshToken"],
        "additionalProperties": False,
        "properties": {
            "refreshToken": {"type": "string", "maxLength": 512, "pattern": TEXT_PATTERN},
        },
    },
    "RefreshResponse": {
        "type": "object",
        "required": ["success", "message", "tokens"],
        "additionalProperties": False,
        "properties": {
            "success": {"const": True},
            "message": {"type": "string"},
            "tokens": _ref("TokenPair"),
        },
    },
    "LogoutResponse": {
        "type": "object",
        "required": ["success", "message"],
        "additionalProperties": False,
        "properties": {"success": {"const": True}, "message": {"type": "string"}},
    },
    "CheckoutRequest": {
        "type": "object",
        "required": ["planId"],
        "additionalProperties": False,
        "properties": {
            "planId": {"type": "string", "enum": list(PLAN_IDS)},
            "billingCycle": {"type": "string", "enum": list(CYCLES), "default": "monthly"},
            "successUrl": _redirect_url(
                "Where Stripe sends the user after paying (default: the account dashboard). "
                "Must be an absolute http(s) URL on an allowed host."
            ),
            "cancelUrl": _redirect_url(
                "Where Stripe sends the user on cancel (default: the pricing page). "
                "Must be an absolute http(s) URL on an allowed host."
            ),
        },
    },
    "CheckoutPlan": {
        "type": "object",
        "required": ["id", "name", "monthlyCredits", "priceCents"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "enum": list(PLAN_IDS)},
            "name": {"type": "string"},
            "monthlyCredits": {"type": "integer", "minimum": 1},
            "priceCents": {
                "type": "integer",
                "minimum": 1,
                "description": "The price of the chosen billing cycle, in cents.",
            },
        },
    },
    "CheckoutResponse": {
        "type": "object",
        "required": ["sessionId", "url", "plan"],
        "additionalProperties": False,
        "properties": {
            "sessionId": {"type": "string", "pattern": "^cs_"},
            "url": {"type": "string", "format": "uri", "description": "Redirect the user here."},
            "plan": _ref("CheckoutPlan"),
        },
    },
    "CreditPackage": {
        "type": "object",
        "required": ["id", "name", "credits", "priceCents"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "pattern": PACK_ID_PATTERN},
            "name": {
                "type": "string",
                "description": "The display name from the published marketing copy.",
            },
            "credits": {"type": "integer", "minimum": 1},
            "priceCents": {
                "type": "integer",
                "minimum": 1,
                "description": "Charged once, in cents (USD).",
            },
        },
    },
    "CreditPackages": {
        "type": "object",
        "required": ["packages"],
        "additionalProperties": False,
        "properties": {"packages": {"type": "array", "items": _ref("CreditPackage")}},
    },
    "CreditCheckoutRequest": {
        "type": "object",
        "required": ["packageId"],
        "additionalProperties": False,
        "properties": {
            "packageId": {
                "type": "string",
                # The packs of the catalog file in the repository (reviewed like code, as the
                # plan ids are); a deployment's own CATALOG_PATH may sell others.
                "enum": list(load_catalog().packs),
                "description": "A package's `id` from `GET /credits/packages`.",
            },
            "successUrl": _redirect_url(
                "Where Stripe sends the user after paying (default: the account dashboard with "
                "`?credits=purchased`). Must be an absolute http(s) URL on an allowed host."
            ),
            "cancelUrl": _redirect_url(
                "Where Stripe sends the user on cancel (default: the account dashboard with "
                "`?credits=canceled`). Must be an absolute http(s) URL on an allowed host."
            ),
        },
    },
    "CreditCheckoutResponse": {
        "type": "object",
        "required": ["sessionId", "url", "package"],
        "additionalProperties": False,
        "properties": {
            "sessionId": {"type": "string", "pattern": "^cs_"},
            "url": {"type": "string", "format": "uri", "description": "Redirect the user here."},
            "package": _ref("CreditPackage"),
        },
    },
    "Subscription": {
        "type": "object",
        "required": [
            "plan",
            "status",
            "billingCycle",
            "currentPeriodStart",
            "currentPeriodEnd",
            "cancelAtPeriodEnd",
        ],
        "additionalProperties": False,
        "properties": {
            "plan": {"type": "string", "enum": list(PLAN_IDS)},
            "status": {"type": "string", "enum": ["active", "trialing", "past_due"]},
            "billingCycle": {"type": "string", "enum": list(CYCLES)},
            "currentPeriodStart": {"type": ["string", "null"], "format": "date-time"},
            "currentPeriodEnd": {"type": ["string", "null"], "format": "date-time"},
            "cancelAtPeriodEnd": {
                "type": "boolean",
                "description": "True when the subscription ends at (or before) the period end.",
            },
            "cancelAt": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "When the subscription is set to end; null if it renews.",
            },
            "scheduledChange": {
                "description": "A switch that takes effect later (a downgrade at the period "
                "end), or null.",
                "oneOf": [
                    {"type": "null"},
                    {
                        "type": "object",
                        "required": ["plan", "billingCycle", "effectiveAt"],
                        "additionalProperties": False,
                        "properties": {
                            "plan": {"type": "string", "enum": list(PLAN_IDS)},
                            "billingCycle": {"type": "string", "enum": list(CYCLES)},
                            "effectiveAt": {"type": "string", "format": "date-time"},
                        },
                    },
                ],
            },
        },
    },
    "PlanDetails": {
        "type": "object",
        "required": ["id", "name", "monthlyCredits", "price", "features"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "enum": list(PLAN_IDS)},
            "name": {"type": "string"},
            "monthlyCredits": {"type": "integer", "minimum": 1},
            "price": {
                "type": "number",
                "exclusiveMinimum": 0,
                "description": "The price of the subscription's billing cycle, in dollars.",
            },
            "features": {"type": "array", "items": {"type": "string"}},
        },
    },
    "CurrentSubscription": {
        "type": "object",
        "required": ["hasSubscription", "subscription", "planDetails"],
        "additionalProperties": False,
        "properties": {
            "hasSubscription": {"type": "boolean"},
            "subscription": {"oneOf": [_ref("Subscription"), {"type": "null"}]},
            "planDetails": {"oneOf": [_ref("PlanDetails"), {"type": "null"}]},
        },
    },
    "PortalRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "returnUrl": _redirect_url(
                "Where the portal sends the user back (default: the account dashboard). "
                "Must be an absolute http(s) URL on an allowed host."
            )
        },
    },
    "PortalResponse": {
        "type": "object",
        "required": ["url"],
        "additionalProperties": False,
        "properties": {"url": {"type": "string", "format": "uri"}},
    },
    "CreditTransaction": {
        "type": "object",
        "required": ["id", "type", "amount", "description", "siteId", "createdAt"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "pattern": "^txn_", "description": "Opaque."},
            "type": {
                "type": "string",
                "enum": list(CREDIT_TYPES),
                "description": "`purchase`: credits bought (plan months, packs). `usage`: spent "
                "(negative), or a failed generation's reversal (positive). `refund`: taken back "
                "after money went back (negative), or given back when it returned (positive).",
            },
            "amount": {"type": "integer"},
            "description": {"type": "string"},
            "siteId": {
                "type": ["string", "null"],
                "description": "The site a usage was for; null otherwise.",
            },
            "createdAt": {"type": "string", "format": "date-time"},
        },
    },
    "CreditBalance": {
        "type": "object",
        "required": ["balance", "totalPurchased", "totalUsed", "recentTransactions"],
        "additionalProperties": False,
        "properties": {
            "balance": {
                "type": "integer",
                "description": "totalPurchased - totalUsed - totalTakenBack.",
            },
            "totalPurchased": {"type": "integer", "description": "Every credit bought."},
            "totalUsed": {"type": "integer", "description": "Net usage: spent less reversals."},
            "totalTakenBack": {
                "type": "integer",
                "description": "Taken back after money went back; the balance may be below zero.",
            },
            "recentTransactions": {
                "type": "array",
                "maxItems": 10,
                "description": "The newest ledger entries first.",
                "items": _ref("CreditTransaction"),
            },
        },
    },
    "CreditHistory": {
        "type": "object",
        "required": ["transactions", "total", "hasMore"],
        "additionalProperties": False,
        "properties": {
            "transactions": {
                "type": "array",
                "items": _ref("CreditTransaction"),
                "description": "Newest first.",
            },
            "total": {"type": "integer", "minimum": 0},
            "hasMore": {"type": "boolean"},
        },
    },
    "UsageRequest": {
        "type": "object",
        "required": ["userId", "amount", "description", "idempotencyKey"],
        "additionalProperties": False,
        "properties": {
            "userId": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
            "amount": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
            "description": {
                "type": "string",
                "minLength": 1,
                "maxLength": 255,
                "pattern": TEXT_PATTERN,
            },
            "siteId": {"type": ["string", "null"], "maxLength": 255, "pattern": TEXT_PATTERN},
            "idempotencyKey": _ref("IdempotencyKey"),
        },
    },
    "ReverseUsageRequest": {
        "type": "object",
        "required": ["idempotencyKey"],
        "additionalProperties": False,
        "properties": {"idempotencyKey": _ref("IdempotencyKey")},
    },
    "IdempotencyKey": {
        "type": "string",
        "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$",
        "description": "Names one generation: the same key never debits twice.",
    },
    "LedgerAnswer": {
        "type": "object",
        "required": ["balance", "transaction"],
        "additionalProperties": False,
        "properties": {
            "balance": {"type": "integer", "description": "Right after this entry."},
            "transaction": _ref("CreditTransaction"),
        },
    },
    "InsufficientCredits": {
        "type": "object",
        "required": ["error", "balance", "needed"],
        "additionalProperties": False,
        "properties": {
            "error": SCHEMA_ERROR_BODY,
            "balance": {"type": "integer"},
            "needed": {"type": "integer", "minimum": 1},
        },
    },
    "PlanPrice": {
        "type": "object",
        "required": ["priceCents", "price"],
        "additionalProperties": False,
        "properties": {
            "priceCents": {"type": "integer", "minimum": 1},
            "price": {"type": "number", "exclusiveMinimum": 0, "description": "In dollars."},
        },
    },
    "Plan": {
        "type": "object",
        "required": [
            "id",
            "name",
            "tagline",
            "description",
            "features",
            "badge",
            "highlighted",
            "monthlyCredits",
            "prices",
        ],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "enum": list(PLAN_IDS)},
            "name": {"type": "string"},
            "tagline": {"type": "string"},
            "description": {"type": "string", "description": "Markdown."},
            "features": {"type": "array", "items": {"type": "string"}},
            "badge": {"type": "string"},
            "highlighted": {"type": "boolean"},
            "monthlyCredits": {"type": "integer", "minimum": 1},
            "prices": {
                "type": "object",
                "required": list(CYCLES),
                "additionalProperties": False,
                "properties": {cycle: _ref("PlanPrice") for cycle in CYCLES},
            },
        },
    },
    "PlanList": {
        "type": "object",
        "required": ["currency", "plans"],
        "additionalProperties": False,
        "properties": {
            "currency": {"const": "usd"},
            "plans": {"type": "array", "items": _ref("Plan")},
        },
    },
    "Invoice": {
        "type": "object",
        "required": [
            "id",
            "number",
            "status",
            "currency",
            "subtotalCents",
            "discountCents",
            "taxCents",
            "totalCents",
            "amountPaidCents",
            "amountRefundedCents",
            "createdAt",
            "hostedInvoiceUrl",
            "invoicePdfUrl",
        ],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "description": "Stripe's invoice id (`in_…`)."},
            "number": {"type": ["string", "null"]},
            "status": {
                "type": "string",
                "enum": list(INVOICE_STATUSES),
                "description": "Stripe's status, except a paid invoice whose money went back in "
                "part (`partially_refunded`) or in full (`refunded`).",
            },
            "currency": {"type": "string"},
            "subtotalCents": {
                "type": ["integer", "null"],
                "description": "Before invoice discounts and tax; null for an invoice not "
                "re-read since billing history began (as are discount and tax).",
            },
            "discountCents": {"type": ["integer", "null"], "minimum": 0},
            "taxCents": {"type": ["integer", "null"], "minimum": 0},
            "totalCents": {"type": "integer"},
            "amountPaidCents": {"type": "integer", "minimum": 0},
            "amountRefundedCents": {"type": "integer", "minimum": 0},
            "createdAt": {"type": "string", "format": "date-time"},
            "hostedInvoiceUrl": {"type": ["string", "null"], "format": "uri"},
            "invoicePdfUrl": {"type": ["string", "null"], "format": "uri"},
        },
    },
    "InvoiceList": {
        "type": "object",
        "required": ["invoices", "total", "hasMore"],
        "additionalProperties": False,
        "properties": {
            "invoices": {"type": "array", "items": _ref("Invoice"), "description": "Newest first."},
            "total": {"type": "integer", "minimum": 0},
            "hasMore": {"type": "boolean"},
        },
    },
}

# At least one character that is not white space (names are stripped).
_KEY_NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": 60,
    "pattern": f"^[^{REFUSED_IN_TEXT}]*[^{REFUSED_IN_TEXT}\\s][^{REFUSED_IN_TEXT}]*$",
}
_KEY_DESCRIPTION = {
    "type": ["string", "null"],
    "maxLength": 500,
    "pattern": TEXT_PATTERN,
    "description": "Optional; null or an empty string for none.",
}
_KEY_SCOPES = {
    "type": "array",
    "minItems": 1,
    "maxItems": 1,
    "items": {"type": "string", "enum": ["read", "full"]},
    "description": '`["read"]`: GET only (403 `insufficient_scope` otherwise). `["full"]`: every '
    "`/api` endpoint.",
}
_API_KEY_FIELDS = {
    "id": {"type": "string", "pattern": "^key_", "description": "Opaque."},
    "name": {"type": "string"},
    "description": {"type": ["string", "null"]},
    "keyPreview": {
        "type": "string",
        "pattern": "^llmgen_",
        "description": "The key's first characters and an ellipsis.",
    },
    "scopes": {"type": "array", "items": {"type": "string", "enum": ["read", "full"]}},
    "isActive": {"type": "boolean", "description": "False once revoked or expired."},
    "lastUsedAt": {
        "type": ["string", "null"],
        "format": "date-time",
        "description": "To the minute: a key's use is recorded at most once a minute.",
    },
    "expiresAt": {"type": ["string", "null"], "format": "date-time"},
    "createdAt": {"type": "string", "format": "date-time"},
}
SCHEMAS |= {
    "ApiKey": {
        "type": "object",
        "required": list(_API_KEY_FIELDS),
        "additionalProperties": False,
        "properties": _API_KEY_FIELDS,
    },
    "ApiKeyList": {
        "type": "object",
        "required": ["apiKeys", "total"],
        "additionalProperties": False,
        "properties": {
            "apiKeys": {
                "type": "array",
                "items": _ref("ApiKey"),
                "description": "Unrevoked keys (expired ones too), newest first.",
            },
            "total": {"type": "integer", "minimum": 0},
        },
    },
    "CreateApiKeyRequest": {
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": {
            "name": _KEY_NAME,
            "description": _KEY_DESCRIPTION,
            "scopes": {**_KEY_SCOPES, "default": ["full"]},
            "expiresAt": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "ISO 8601 with a zone, in the future, at most 365 days ahead; "
                "null or absent: the key does not expire.",
            },
        },
    },
    "CreatedApiKey": {
        "type": "object",
        "required": [*_API_KEY_FIELDS, "key"],
        "additionalProperties": False,
        "properties": _API_KEY_FIELDS
        | {"key": {"type": "string", "pattern": "^llmgen_", "description": "Shown once."}},
    },
    "CreateApiKeyResponse": {
        "type": "object",
        "required": ["apiKey", "warning"],
        "additionalProperties": False,
        "properties": {"apiKey": _ref("CreatedApiKey"), "warning": {"type": "string"}},
    },
    "UpdateApiKeyRequest": {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": {"name": _KEY_NAME, "description": _KEY_DESCRIPTION, "scopes": _KEY_SCOPES},
    },
    "ApiKeyResponse": {
        "type": "object",
        "required": ["apiKey"],
        "additionalProperties": False,
        "properties": {"apiKey": _ref("ApiKey")},
    },
}

RESPONSES: dict[str, Any] = {
    "BadRequest": _error(
        "Invalid request: `validation_error`, `invalid_json`, `invalid_characters` or an "
        "endpoint-specific code."
    ),
    "Unauthorized": {
        **_error("`unauthorized`: missing, invalid, expired, revoked or wrong kind of credential."),
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
    "PayloadTooLarge": _error("`payload_too_large`."),
    "UnsupportedMediaType": _error("`unsupported_media_type`: send `application/json`."),
    "RateLimited": {
        **_error("`rate_limited`."),
        "headers": {"Retry-After": {"schema": {"type": "string"}}},
    },
    "PaymentProviderUnavailable": _error("`payment_provider_unavailable`."),
    "ServiceUnavailable": _error(
        "`payment_provider_unavailable` (Stripe unreachable: retry), `catalog_mismatch` or "
        "`service_unavailable`."
    ),
}

# How each operation authenticates, by flavour.
JWT_SECURITY: list[dict[str, list[str]]] = [{"accessToken": []}]
API_KEY_SECURITY: list[dict[str, list[str]]] = [{"apiKey": []}]
SERVICE_SECURITY: list[dict[str, list[str]]] = [{"serviceToken": []}]


def _common_errors(*, body: bool) -> dict[str, Any]:
    errors = {"401": _response("Unauthorized"), "429": _response("RateLimited")}
    if body:
        errors |= {
            "413": _response("PayloadTooLarge"),
            "415": _response("UnsupportedMediaType"),
        }
    return errors


def _checkout(flavour: str) -> dict[str, Any]:
    return {
        "post": {
            "operationId": f"createCheckout{flavour}",
            "summary": "Start a Stripe Checkout session for a plan",
            "description": "Redirect the user to `url`. After paying, Stripe sends them to "
            "`successUrl`; confirm with `GET /subscriptions/current`.",
            "tags": ["subscriptions"],
            "requestBody": _body("CheckoutRequest", required=True),
            "responses": {
                "200": _json(_ref("CheckoutResponse"), "The session to redirect the user to."),
                "400": _error(
                    "`invalid_plan`, `invalid_billing_cycle`, `invalid_redirect_url`, "
                    "`subscription_exists`, `validation_error` or `invalid_json`."
                ),
                "409": _error("`checkout_in_progress`: another checkout start is under way."),
                **_common_errors(body=True),
                "502": _response("PaymentProviderUnavailable"),
                "503": _response("ServiceUnavailable"),
            },
        }
    }


def _current(flavour: str) -> dict[str, Any]:
    return {
        "get": {
            "operationId": f"getCurrentSubscription{flavour}",
            "summary": "The user's current subscription, if any",
            "tags": ["subscriptions"],
            "responses": {
                "200": _json(
                    _ref("CurrentSubscription"),
                    "`hasSubscription` is true while a subscription gives access.",
                ),
                **_common_errors(body=False),
            },
        }
    }


def _portal(flavour: str) -> dict[str, Any]:
    return {
        "post": {
            "operationId": f"createPortalSession{flavour}",
            "summary": "Open Stripe's customer portal (card, invoices, change plan, cancel)",
            "tags": ["subscriptions"],
            "requestBody": _body("PortalRequest", required=False),
            "responses": {
                "200": _json(_ref("PortalResponse"), "Redirect the user here."),
                "400": _error(
                    "`no_billing_account`, `invalid_redirect_url`, `validation_error` or "
                    "`invalid_json`."
                ),
                **_common_errors(body=True),
                "502": _response("PaymentProviderUnavailable"),
                "503": _response("ServiceUnavailable"),
            },
        }
    }


def _credits(flavour: str) -> dict[str, Any]:
    return {
        "get": {
            "operationId": f"getCreditBalance{flavour}",
            "summary": "Credit balance, totals and the latest ledger entries",
            "tags": ["credits"],
            "responses": {
                "200": _json(_ref("CreditBalance"), "The balance is derived from the ledger."),
                **_common_errors(body=False),
            },
        }
    }


def _credit_packages(flavour: str) -> dict[str, Any]:
    return {
        "get": {
            "operationId": f"listCreditPackages{flavour}",
            "summary": "The credit packs on sale (one-time purchases)",
            "tags": ["credits"],
            "responses": {
                "200": _json(_ref("CreditPackages"), "In the catalog's order."),
                **_common_errors(body=False),
            },
        }
    }


def _credit_checkout(flavour: str) -> dict[str, Any]:
    return {
        "post": {
            "operationId": f"createCreditCheckout{flavour}",
            "summary": "Start a Stripe Checkout session for a credit pack",
            "description": "Redirect the user to `url`. No subscription is needed. Once Stripe "
            "confirms the payment the pack's credits are added exactly once (a `purchase` "
            "entry in `GET /credits/history`); a refund takes them back pro rata.",
            "tags": ["credits"],
            "requestBody": _body("CreditCheckoutRequest", required=True),
            "responses": {
                "200": _json(_ref("CreditCheckoutResponse"), "The session to redirect to."),
                "400": _error(
                    "`invalid_package`, `invalid_redirect_url`, `validation_error` or "
                    "`invalid_json`."
                ),
                "409": _error("`checkout_in_progress`: another checkout start is under way."),
                **_common_errors(body=True),
                "502": _response("PaymentProviderUnavailable"),
                "503": _response("ServiceUnavailable"),
            },
        }
    }


def _credit_history(flavour: str) -> dict[str, Any]:
    return {
        "get": {
            "operationId": f"listCreditTransactions{flavour}",
            "summary": "The user's credit ledger, newest first, a page at a time, by type",
            "tags": ["credits"],
            "parameters": [
                _paging("limit", 20, 1, 100),
                _paging("offset", 0, 0, 1_000_000),
                {
                    "name": "type",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": list(CREDIT_TYPES)},
                },
            ],
            "responses": {
                "200": _json(_ref("CreditHistory"), "`total` counts the whole (filtered) ledger."),
                "400": _error(
                    "`validation_error`: limit, offset or type out of range, given twice, or an "
                    "unknown query parameter."
                ),
                **_common_errors(body=False),
            },
        }
    }


def _service_errors() -> dict[str, Any]:
    return {
        "400": _response("BadRequest"),
        "401": _response("Unauthorized"),
        "413": _response("PayloadTooLarge"),
        "415": _response("UnsupportedMediaType"),
        "429": _response("RateLimited"),
        "503": _error("`usage_not_configured`: no service credential is configured."),
    }


def _service_paths() -> dict[str, Any]:
    """Our generation service's endpoints: the service credential, not a user's."""
    answer = "The balance right after the entry, and the entry. A replay (same key, same "
    answer += "request) answers the first answer again, with `Idempotent-Replayed: true`."
    replayed = {"Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true", "false"]}}}
    return {
        "/credits/usage": {
            "post": {
                "operationId": "recordUsage",
                "summary": "Debit a user's credits once per idempotency key, never below zero",
                "tags": ["credits"],
                "security": SERVICE_SECURITY,
                "requestBody": _body("UsageRequest", required=True),
                "responses": {
                    "200": {**_json(_ref("LedgerAnswer"), answer), "headers": replayed},
                    "402": _json(
                        _ref("InsufficientCredits"), "`insufficient_credits`; nothing written."
                    ),
                    "404": _error("`user_not_found`."),
                    "409": _error("`idempotency_key_reused` or `account_inactive`."),
                    **_service_errors(),
                },
            }
        },
        "/credits/usage/reverse": {
            "post": {
                "operationId": "reverseUsage",
                "summary": "Give back a failed generation's credits, once",
                "tags": ["credits"],
                "security": SERVICE_SECURITY,
                "requestBody": _body("ReverseUsageRequest", required=True),
                "responses": {
                    "200": {**_json(_ref("LedgerAnswer"), answer), "headers": replayed},
                    "404": _error("`usage_not_found`."),
                    "409": _error("`account_inactive`: the account was deleted."),
                    **_service_errors(),
                },
            }
        },
    }


def _paging(name: str, default: int, minimum: int, maximum: int) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": minimum, "maximum": maximum, "default": default},
    }


def _invoices(flavour: str) -> dict[str, Any]:
    return {
        "get": {
            "operationId": f"listInvoices{flavour}",
            "summary": "The user's invoices, newest first, with discount, tax, status and links",
            "tags": ["billing"],
            "parameters": [
                _paging("limit", 20, 1, 100),
                _paging("offset", 0, 0, 1_000_000),
            ],
            "responses": {
                "200": _json(_ref("InvoiceList"), "Drafts are left out."),
                "400": _error(
                    "`validation_error`: limit or offset out of range, given twice, or an "
                    "unknown query parameter."
                ),
                **_common_errors(body=False),
            },
        }
    }


def _both_flavours(path: str, operations: Any) -> dict[str, Any]:
    """The JWT path and its `/api` twin (API key), as API.md defines every endpoint."""
    jwt_ops, key_ops = operations("WithToken"), operations("WithApiKey")
    for operation in jwt_ops.values():
        operation["security"] = JWT_SECURITY
    for method, operation in key_ops.items():
        operation["security"] = API_KEY_SECURITY
        if method != "get":  # read-only keys may only read (webapp/api/credentials.py)
            operation["responses"]["403"] = _error("`insufficient_scope`: a read-only key.")
    return {path: jwt_ops, f"{path}/api": key_ops}


def _auth_operation(
    operation_id: str, summary: str, request: str, response: str, refused: str | None
) -> dict[str, Any]:
    unauthorized = {
        **_error(refused or ""),
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    }
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "tags": ["auth"],
            "security": [],
            "requestBody": _body(request, required=True),
            "responses": {
                "200": _json(_ref(response), "Never cached (`Cache-Control: no-store`)."),
                "400": _response("BadRequest"),
                **({"401": unauthorized} if refused else {}),
                "413": _response("PayloadTooLarge"),
                "415": _response("UnsupportedMediaType"),
                "429": _response("RateLimited"),
            },
        }
    }


def _session_paths() -> dict[str, Any]:
    """Log-in with refresh tokens (webapp/api/refresh_tokens.py)."""
    return {
        "/auth/login": _auth_operation(
            "logIn",
            "Email and password for the user and a token pair (15-minute access token)",
            "TokenRequest",
            "LoginResponse",
            "`invalid_credentials` or `account_deactivated`.",
        ),
        "/auth/refresh": _auth_operation(
            "refreshTokens",
            "Trade a refresh token for a new pair; the old refresh token stops working",
            "RefreshRequest",
            "RefreshResponse",
            "`invalid_refresh_token`, or `refresh_token_reused`: the token was already "
            "exchanged, so every token of its log-in was revoked.",
        ),
        "/auth/logout": _auth_operation(
            "logOut",
            "Revoke the refresh token's log-in: its refresh and access tokens stop working",
            "RefreshRequest",
            "LogoutResponse",
            None,  # an unknown refresh token gets 200 too (RFC 7009, section 2.2)
        ),
    }


_KEY_MANAGEMENT_ERRORS = {
    "403": _error(
        "`api_key_not_allowed`: the request came with an API key (keys cannot manage keys)."
    ),
    "401": _response("Unauthorized"),
    "429": _response("RateLimited"),
}
_KEY_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
    "description": "The key's `id` (`key_…`).",
}


def _key_management_paths() -> dict[str, Any]:
    """API keys over the API: JWT only, so no `/api` twins."""
    body_errors = {
        "413": _response("PayloadTooLarge"),
        "415": _response("UnsupportedMediaType"),
    }
    collection: dict[str, dict[str, Any]] = {
        "get": {
            "operationId": "listApiKeys",
            "summary": "The caller's API keys (never the secrets)",
            "responses": {
                "200": _json(_ref("ApiKeyList"), "Unrevoked keys, newest first."),
                "400": _error("`validation_error`: an unknown query parameter."),
                **_KEY_MANAGEMENT_ERRORS,
            },
        },
        "post": {
            "operationId": "createApiKey",
            "summary": "Create an API key; the full key is in this answer only",
            "requestBody": _body("CreateApiKeyRequest", required=True),
            "responses": {
                "201": _json(_ref("CreateApiKeyResponse"), "Store `apiKey.key` now."),
                "400": _error(
                    "`validation_error`, `invalid_scopes`, `invalid_expiry` or `invalid_json`."
                ),
                **_KEY_MANAGEMENT_ERRORS,
                "403": _error(
                    "`api_key_not_allowed` (the request came with an API key) or "
                    "`email_not_verified`."
                ),
                "409": _error("`too_many_api_keys`: revoke one first."),
                **body_errors,
            },
        },
    }
    item: dict[str, dict[str, Any]] = {
        "put": {
            "operationId": "updateApiKey",
            "summary": "Change a key's name, description or scopes",
            "parameters": [_KEY_ID],
            "requestBody": _body("UpdateApiKeyRequest", required=True),
            "responses": {
                "200": _json(_ref("ApiKeyResponse"), "The key as it is now."),
                "400": _error(
                    "`validation_error`, `invalid_scopes`, `invalid_json` or `invalid_characters`."
                ),
                "404": _error("`api_key_not_found`: unknown, revoked or someone else's."),
                **_KEY_MANAGEMENT_ERRORS,
                **body_errors,
            },
        },
        "delete": {
            "operationId": "revokeApiKey",
            "summary": "Revoke a key: requests with it are refused at once",
            "parameters": [_KEY_ID],
            "responses": {
                "200": _json(_ref("ApiKeyResponse"), "The revoked key (`isActive` false)."),
                "400": _error("`invalid_characters` in the id."),
                "404": _error("`api_key_not_found`: unknown, already revoked or someone else's."),
                **_KEY_MANAGEMENT_ERRORS,
            },
        },
    }
    for operation in [*collection.values(), *item.values()]:
        operation["tags"] = ["api-keys"]
        operation["security"] = JWT_SECURITY
    return {"/api-keys": collection, "/api-keys/{id}": item}


def _public_paths() -> dict[str, Any]:
    return {
        "/auth/token": {
            "post": {
                "operationId": "createAccessToken",
                "summary": "Exchange email and password for a JWT access token",
                "tags": ["auth"],
                "security": [],
                "requestBody": _body("TokenRequest", required=True),
                "responses": {
                    "200": _json(_ref("TokenResponse"), "Send as `Authorization: Bearer …`."),
                    "400": _response("BadRequest"),
                    **_common_errors(body=True),
                },
            }
        },
        **_session_paths(),
        "/plans": {
            "get": {
                "operationId": "listPlans",
                "summary": "The plans we sell: names, copy, credits and prices for both cycles",
                "tags": ["plans"],
                "security": [],
                "responses": {
                    "200": _json(_ref("PlanList"), "In display order."),
                    "429": _response("RateLimited"),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "getOpenApiDocument",
                "summary": "This document",
                "tags": ["meta"],
                "security": [],
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1.",
                        "content": {JSON: {"schema": {"type": "object"}}},
                    },
                    "429": _response("RateLimited"),
                },
            }
        },
    }


@cache
def _document() -> dict[str, Any]:
    paths = _public_paths()
    paths |= _both_flavours("/subscriptions/checkout", _checkout)
    paths |= _both_flavours("/subscriptions/current", _current)
    paths |= _both_flavours("/subscriptions/portal", _portal)
    paths |= _both_flavours("/credits/balance", _credits)
    paths |= _both_flavours("/credits/history", _credit_history)
    paths |= _both_flavours("/credits/packages", _credit_packages)
    paths |= _both_flavours("/credits/checkout", _credit_checkout)
    paths |= _service_paths()
    paths |= _both_flavours("/billing/invoices", _invoices)
    paths |= _key_management_paths()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "LLMGen subscription API",
            "version": "1.0.0",
            "description": "Subscribe to a plan through Stripe Checkout, read the current "
            "subscription, open the billing portal, buy credit packs, read credits and the "
            "billing history. "
            "Every authenticated endpoint exists twice: the plain path takes a JWT access token "
            "from `/auth/login` (refreshed at `/auth/refresh`) or `/auth/token`, the same path "
            "with `/api` appended takes an API key "
            "(`llmgen_…`) created on the account page. Each flavour refuses the other's "
            "credential with 401. Errors are "
            '`{"error": {"code", "message"}}` with a stable `code`.',
        },
        "servers": [{"url": "/api/v1"}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "responses": RESPONSES,
            "securitySchemes": {
                "accessToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "From `POST /auth/login`, `/auth/refresh` or `/auth/token`; "
                    "valid for `expiresIn` seconds.",
                },
                "serviceToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Our generation service's `CREDITS_SERVICE_TOKEN`; not for "
                    "partners.",
                },
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "llmgen_<secret>",
                    "description": "Created on the account page; shown once.",
                },
            },
        },
    }


def openapi_document() -> dict[str, Any]:
    """A fresh copy of the document (callers may not mutate the cached one)."""
    return copy.deepcopy(_document())
