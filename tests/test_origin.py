"""nowgate.origin: the Origin allow-list is an exact match, checked by pure functions."""

from __future__ import annotations

import pytest

from nowgate.origin import origin_allowed, own_origin

SITE = "https://example.com"
ALLOWED = (SITE, "http://localhost:8000")


def allowed(origin: str | None, allow_missing: bool = False) -> bool:
    return origin_allowed(origin, ALLOWED, None, allow_missing)


@pytest.mark.parametrize("origin", [SITE, "http://localhost:8000"])
def test_an_origin_in_the_list_is_allowed(origin: str) -> None:
    assert allowed(origin)


@pytest.mark.parametrize(
    "origin",
    [
        "https://example.com.evil.net",
        "https://evil-example.com",
        "https://evilexample.com",
        "https://sub.example.com",
        "https://example.co",
        "https://example.com:443",
        "https://example.com/",
        "https://example.com/path",
        "http://example.com",
        "wss://example.com",
        "https://example.com@evil.net",
        " https://example.com",
        "https://example.com ",
        "http://localhost:8001",
        "http://localhost",
        "",
    ],
)
def test_anything_but_an_exact_match_is_refused(origin: str) -> None:
    assert not allowed(origin)


@pytest.mark.parametrize("origin", ["HTTPS://example.com", "https://EXAMPLE.com",
                                    "https://Example.Com"])
def test_allow_list_matching_is_case_sensitive(origin: str) -> None:
    # Browsers serialise origins in lower case; any other spelling did not come from one.
    assert not allowed(origin)


def test_the_null_origin_is_refused_even_when_listed() -> None:
    assert not allowed("null")
    assert not origin_allowed("null", ("null",), None, allow_missing=True)
    assert not origin_allowed("null", (), "null", allow_missing=True)


def test_a_missing_origin_follows_the_flag() -> None:
    assert allowed(None, allow_missing=True)
    assert not allowed(None, allow_missing=False)
    assert not origin_allowed(None, (), "https://example.com", allow_missing=False)


def test_an_empty_list_allows_only_the_gateways_own_origin() -> None:
    same = own_origin("wss", "example.com")
    assert origin_allowed("https://example.com", (), same, allow_missing=False)
    assert not origin_allowed("https://evil.net", (), same, allow_missing=False)
    assert not origin_allowed("http://example.com", (), same, allow_missing=False)
    assert not origin_allowed("https://example.com.evil.net", (), same, allow_missing=False)


def test_an_empty_list_without_a_host_allows_no_origin() -> None:
    assert own_origin("wss", None) is None
    assert own_origin("wss", "") is None
    assert not origin_allowed("https://example.com", (), None, allow_missing=False)


def test_a_non_empty_list_replaces_the_same_origin_rule() -> None:
    same = own_origin("ws", "gateway.internal")
    assert not origin_allowed("http://gateway.internal", ALLOWED, same, allow_missing=False)
    assert origin_allowed(SITE, ALLOWED, same, allow_missing=False)


@pytest.mark.parametrize(
    "scheme, host, expected",
    [
        ("wss", "example.com", "https://example.com"),
        ("https", "example.com", "https://example.com"),
        ("ws", "example.com", "http://example.com"),
        ("http", "example.com", "http://example.com"),
        ("ws", "localhost:8000", "http://localhost:8000"),
        ("wss", "Example.COM:8443", "https://example.com:8443"),
    ],
)
def test_own_origin_is_derived_from_scheme_and_host(scheme: str, host: str, expected: str) -> None:
    assert own_origin(scheme, host) == expected


def test_same_origin_comparison_ignores_case_of_scheme_and_host() -> None:
    same = own_origin("wss", "Example.com")
    assert origin_allowed("HTTPS://EXAMPLE.COM", (), same, allow_missing=False)


def test_same_origin_includes_the_port() -> None:
    same = own_origin("ws", "localhost:8000")
    assert origin_allowed("http://localhost:8000", (), same, allow_missing=False)
    assert not origin_allowed("http://localhost:8001", (), same, allow_missing=False)
    assert not origin_allowed("http://localhost", (), same, allow_missing=False)
