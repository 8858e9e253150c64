"""The JSON API of `../shared/API.md`: tokens, API keys, checkout, subscription, portal, credits."""
