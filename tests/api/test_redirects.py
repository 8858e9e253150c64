"""The allowlist for successUrl, cancelUrl and returnUrl (`is_allowed_redirect_url`)."""

from __future__ import annotations

import pytest

from webapp.security import is_allowed_redirect_url

ALLOWED = ["site.example", "127.0.0.1:5000"]


@pytest.mark.parametrize(
    "url",
    [
        "https://site.example",
        "https://site.example/",
        "https://site.example/account?tab=1#top",
        "http://site.example/account",
        "HTTPS://SITE.EXAMPLE/account",
        "https://site.example:443/account",
        "http://site.example:80/",
        "https://site.example/success?session_id={CHECKOUT_SESSION_ID}",
        "https://site.example/a%20b",
        "http://127.0.0.1:5000/account",
    ],
)
def test_allowed(url):
    assert is_allowed_redirect_url(url, ALLOWED)


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example",
        "//evil.example",
        "//site.example/",
        "/\\evil.example",
        "/account",
        "https:evil.example",
        "https:/site.example/",
        "https:///site.example/",
        "https://site.evil.example",
        "https://site.example.evil.example/",
        "https://evil.example/site.example",
        "https://evilsite.example",
        "https://site.example@evil.example/",
        "https://user:pass@site.example/",
        "https://site.example%40evil.example/",
        "https://site.example%2F@evil.example",
        "https://evil.example%2Esite.example/",
        "https://%73ite.example/",
        "https://site.example\\@evil.example",
        "https://site.example\\.evil.example",
        "javascript:alert(1)",
        "JavaScript://site.example/%0Aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        "ftp://site.example/",
        "https://site.example:8443/",
        "https://site.example:80/",
        "http://site.example:443/",
        "http://127.0.0.1:5001/account",
        "http://127.0.0.1/account",
        "https://site.example:99999/",
        "https://site.example:/",
        "https://site.example./",
        "https://[::1]/",
        " https://site.example/",
        "https://site.example/ ",
        "https://site.example/\tx",
        "https://site.example/\nx",
        "https://site.example/\x00",
        "https://sïte.example/",
        "https://site.example/ü",
        "https://" + "a" * 2100 + ".site.example/",
        "",
        None,
        42,
        ["https://site.example/"],
    ],
)
def test_refused(url):
    assert not is_allowed_redirect_url(url, ALLOWED)


def test_an_empty_allowlist_allows_nothing():
    assert not is_allowed_redirect_url("https://site.example/", [])


def test_bad_allowlist_entries_are_ignored():
    assert not is_allowed_redirect_url("https://site.example/", ["site.example:http", "@"])
